"""Option types shared by robnp's commands."""

from __future__ import annotations

import click

from robnp import _checks
from robnp.errors import ConfigError


class CommaList(click.ParamType):
    """A comma-separated list: ``--widths 16,32,64``."""

    def __init__(self, item_type: type, what: str):
        self.item_type = item_type
        self.what = what
        self.name = f"list of {what}"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            parts = _checks.comma_list(value, self.what)
        except ConfigError as error:
            self.fail(str(error), param, ctx)
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
