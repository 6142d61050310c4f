"""How much load a server takes: sweeps over load levels (:mod:`.sweep`), the SLOs a level is
held to and its goodput (:mod:`.slo`), the throughput/latency curve and its knee (:mod:`.curve`),
and the wall time of an eval at each concurrency (:mod:`.plan`)."""
