"""Two runs side by side: every figure's change with a bootstrap confidence interval and a
verdict, gated by thresholds (:mod:`.runs`), and two runs' answers question by question with
McNemar's test (:mod:`.answers`)."""

import sys
import types
from typing import Any


class _Callable(types.ModuleType):
    """``from perfbench import compare`` gives this package instead of the function of the same
    name once the package was imported first (Python sets a package's attribute to each
    subpackage it imports): calling the package calls the function, so both work."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from perfbench.compare.runs import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
