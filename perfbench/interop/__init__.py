"""The other tools, for the people who come from them (docs/drop-in.md): ``flags`` folds the
flags of ``evalscope perf`` and ``vllm bench serve`` into perfbench's own; ``vllm`` and
``evalscope`` write those tools' result files; ``imports`` reads result files of vLLM,
EvalScope, GuideLLM and AIPerf into the database as runs of their own."""
