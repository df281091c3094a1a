"""The limits of one runbook expression's evaluation, each checked before the work it bounds. Pure.

The evaluator (`expressions.py`) calls these before it multiplies, concatenates, builds a list or
calls a function, and at every node it visits; each raises LimitExceeded naming the limit, which
the evaluator turns into an ExpressionError that also names the expression.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

MAX_SIZE = 10_000  # characters of text, or elements of a list at every depth, an expression builds
MAX_INT_BITS = 1024  # of an integer: as large as a float gets
MAX_ROUND_DIGITS = 20  # round(x, n) with -20 <= n <= 20
MAX_INT_TEXT = 400  # characters int() parses (1024 bits take 309 digits)
MAX_SECONDS = 0.1  # CPU time of one evaluation

_CONTAINERS = (list, tuple, dict)
_SIZE_UNIT = f"{MAX_SIZE} characters or items, counted at every depth"


class LimitExceeded(Exception):
    """A limit would be exceeded; the message names it. The evaluator re-raises it as an
    ExpressionError naming the expression."""


def size(value: Any, limit: int = MAX_SIZE) -> int:
    """How many elements `value` holds at every depth; the count stops once past `limit`.

    Text counts its characters; a list or mapping the elements inside it (keys and values), an
    empty one or empty text inside another counting one; an integer one per 64 bits; anything
    else one. So `[[0] * 100] * 100` holds 10,000, as its `str()` would show.
    """
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list | tuple | dict):
        return _scalar(value)
    total = 0
    stack = [value]
    while stack:
        container = stack.pop()
        count = len(container) * (2 if isinstance(container, dict) else 1)
        if total + count > limit:  # each element counts at least one: stop before reading them
            return total + count
        items: Iterable[Any] = container
        if isinstance(container, dict):
            items = itertools.chain(container.keys(), container.values())
        for item in items:
            kind = type(item)
            if kind is str:
                total += len(item) or 1
            elif kind is int:
                total += 1 + (item.bit_length() >> 6)
            elif kind in _CONTAINERS:
                if item:
                    stack.append(item)
                else:
                    total += 1
            else:
                total += max(1, size(item)) if isinstance(item, str | list | tuple | dict) else 1
        if total > limit:
            return total
    return total


def _scalar(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return 1 + (value.bit_length() >> 6)
    return 1


def check_size(count: int, what: str) -> None:
    if count > MAX_SIZE:
        raise LimitExceeded(f"{what} would exceed the size limit ({_SIZE_UNIT})")


def check_repeat(sequence: Any, times: int) -> None:
    """`sequence * times`, sized from its operands before anything is built."""
    if times > 0:
        check_size(size(sequence) * times, f"repeating it {times} times")


def check_concat(left: Any, right: Any) -> None:
    """`left + right` for text or lists, sized before anything is built."""
    check_size(size(left) + size(right), "joining them")


def check_int(value: int) -> None:
    bits = value.bit_length()
    if bits > MAX_INT_BITS:
        raise LimitExceeded(
            f"a number of {bits} bits exceeds the integer limit ({MAX_INT_BITS} bits)"
        )


def check_product(left: int, right: int) -> None:
    """`left * right` of integers: a product has at least one bit fewer than its factors' sum."""
    bits = left.bit_length() + right.bit_length() - 1
    if left and right and bits > MAX_INT_BITS:
        raise LimitExceeded(
            f"the product would have at least {bits} bits: over the integer limit "
            f"({MAX_INT_BITS} bits)"
        )


def check_round_digits(digits: int) -> None:
    if not -MAX_ROUND_DIGITS <= digits <= MAX_ROUND_DIGITS:
        raise LimitExceeded(
            f"round() to {digits} digits exceeds the round() limit "
            f"(-{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS})"
        )


def check_int_text(text: str) -> None:
    if len(text) > MAX_INT_TEXT:
        raise LimitExceeded(
            f"int() of {len(text)} characters exceeds the int() limit ({MAX_INT_TEXT} characters)"
        )


def check_time(clock: Callable[[], float], deadline: float) -> None:
    if clock() > deadline:
        raise LimitExceeded(
            f"the evaluation exceeded the time limit ({MAX_SECONDS * 1000:g} ms of CPU time)"
        )
