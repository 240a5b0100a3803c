"""The strategy registry: every strategy, in ``auto``'s order. CLI, magic and ``export`` derive
their choices from it."""
from __future__ import annotations

from ..errors import UnknownChoice
from .base import Strategy
from .dynamo import Dynamo
from .fx import Fx
from .htp import Htp

STRATEGIES: tuple[Strategy, ...] = (Dynamo(), Htp(), Fx())
NAMES = tuple(s.name for s in STRATEGIES)
AUTO = "auto"
CHOICES = (AUTO, *NAMES)


def auto_order() -> tuple[Strategy, ...]:
    """The strategies ``auto`` tries, in order."""
    return tuple(s for s in STRATEGIES if s.in_auto)


def resolve(name: str) -> tuple[Strategy, ...]:
    """The strategies to try for ``strategy=name``; ``UnknownChoice`` for an unknown name."""
    if name == AUTO:
        return auto_order()
    for s in STRATEGIES:
        if s.name == name:
            return (s,)
    raise UnknownChoice.of("strategy", name, CHOICES)


def describe_auto() -> str:
    """``"dynamo, then htp, then fx"``: auto's order in words, for help texts."""
    return ", then ".join(s.name for s in auto_order())
