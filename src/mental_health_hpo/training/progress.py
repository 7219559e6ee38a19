"""Progress bars for epochs and batches that stay quiet in logs, CI and subprocesses."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Bar(Protocol[T_co]):
    """What the trainer uses of a bar: iterate it and show a few numbers."""

    def __iter__(self) -> Iterator[T_co]: ...

    def set_postfix(
        self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any
    ) -> None: ...

    def close(self) -> None: ...


class _QuietBar(Generic[T]):
    """A bar that draws nothing: same calls as tqdm, no output, no overhead."""

    def __init__(self, iterable: Iterable[T]) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[T]:
        return iter(self._iterable)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


def is_interactive() -> bool:
    """True when stderr (where tqdm writes) is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def bar_enabled(requested: bool | None) -> bool:
    """``None`` means auto: on for a terminal, off otherwise; an explicit value wins."""
    return is_interactive() if requested is None else requested


def progress(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    leave: bool = False,
    position: int = 0,
    initial: int = 0,
) -> Bar[T]:
    """Wrap ``iterable`` in a tqdm bar, or in a silent stand-in when bars are off."""
    if not bar_enabled(enabled):
        return _QuietBar(iterable)
    return tqdm(  # type: ignore[no-any-return]
        iterable,
        total=total,
        desc=desc,
        leave=leave,
        position=position,
        initial=initial,
        dynamic_ncols=True,
    )
