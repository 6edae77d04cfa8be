"""Option types shared by robnp's commands."""

from __future__ import annotations

import click


class CommaList(click.ParamType):
    """A comma-separated list: ``--widths 16,32,64``."""

    def __init__(self, item_type: type, what: str):
        self.item_type = item_type
        self.what = what
        self.name = f"list of {what}"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [part.strip() for part in str(value).split(",")]
        if not any(parts):
            self.fail(f"expected a comma-separated list of {self.what}, got an empty value",
                      param, ctx)
        if any(part == "" for part in parts):
            self.fail(f"{value!r} has an empty item; expected a comma-separated list "
                      f"of {self.what}", param, ctx)
        items = []
        for part in parts:
            try:
                items.append(self.item_type(part))
            except ValueError:
                self.fail(f"{part!r} in {value!r} is not one of {self.what}", param, ctx)
        return tuple(items)


INT_LIST = CommaList(int, "integers")
FLOAT_LIST = CommaList(float, "numbers")
NAME_LIST = CommaList(str, "names")
