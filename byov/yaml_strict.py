"""YAML reading that refuses duplicate keys (PyYAML keeps the last one silently).

A config edited at the top with the old line still further down, or a grid with two
`overrides:` blocks, would otherwise run with one of the two values and drop the other without a
word. `load(path)` reads a file with `yaml.SafeLoader`'s rules plus one: a mapping that holds a
key twice is a `DuplicateKeyError` naming the file, the key and both line numbers.
"""
from __future__ import annotations

import yaml

from byov.errors import ByovError


class DuplicateKeyError(ByovError, ValueError):
    """A YAML mapping with a key given twice; the message names the key, both lines and the fix."""


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice."""


def _construct_mapping(loader: StrictSafeLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)  # merge keys (<<) first: a merged key may be overridden
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the base constructor reports it
            continue
        if first is not None:
            name = key_node.start_mark.name
            raise DuplicateKeyError(
                f"{name}: key {key!r} is given twice, on line {first.start_mark.line + 1} and "
                f"on line {key_node.start_mark.line + 1}; YAML would silently keep only the "
                f"second. Delete the line you do not mean")
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def loads(text: str, name: str = "<yaml>"):
    """Parse `text` (named `name` in messages) with StrictSafeLoader."""
    loader = StrictSafeLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load(path: str):
    """Read the YAML file at `path` with StrictSafeLoader.

    Raises:
        DuplicateKeyError: a mapping gives a key twice (file, key and both lines named).
        yaml.YAMLError: the file is not valid YAML.
        OSError: it cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        return loads(f.read(), path)
