"""Reading and writing the coverage document as YAML.

Both directions use PyYAML's safe loader and dumper with three changes that
protect hand-edited files:

- Only ``true`` and ``false`` are booleans. In YAML 1.1 ``NO`` (Norway), ``on``
  and ``yes`` are booleans too, which would silently turn a country code into
  ``False``; here they stay strings.
- Timestamps stay strings, so ``starts_at: 2026-12-23T00:00:00+00:00`` works
  with or without quotes and is validated like any other value.
- A key repeated within one mapping is an error instead of the last one
  silently winning.
"""

import re
from typing import Any

import yaml

from leadrouter.coverage.errors import CoverageError

SECTION_ORDER = (
    "skills",
    "product_lines",
    "teams",
    "reps",
    "queues",
    "territories",
    "accounts",
    "rules",
    "calendars",
    "sla_policies",
)

# Sections whose entries are small enough to read best on one line each.
_ONE_LINE_SECTIONS = frozenset({"skills", "product_lines"})


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"the key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _FlowList(list[Any]):
    """A list written on one line: ``[german, enterprise]``."""


class _FlowDict(dict[str, Any]):
    """A mapping written on one line: ``{rep: anna.schmidt, weight: 2}``."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as people write them by hand.
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _FlowList, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)
_Dumper.add_representer(
    _FlowDict, lambda dumper, value: dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)
)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _styled(value: Any, *, one_line_entries: bool = False) -> Any:
    """Mark short lists and small list entries for one-line output.

    Lists of scalars are written inline; mappings of scalars inside a list are
    written inline when they are nested (queue members, out-of-office periods)
    or belong to a section of small entries (skills, product lines); so are
    mappings of scalars under a key of an entry (a calendar's owner, holidays).
    """
    if isinstance(value, dict):
        return {
            key: _FlowDict(item)
            if isinstance(item, dict) and item and all(_is_scalar(v) for v in item.values())
            else _styled(item, one_line_entries=True)
            for key, item in value.items()
        }
    if isinstance(value, list):
        if all(_is_scalar(item) for item in value):
            return _FlowList(value)
        styled = []
        for item in value:
            if one_line_entries and isinstance(item, dict) and all(_is_scalar(v) for v in item.values()):
                styled.append(_FlowDict(item))
            else:
                styled.append(_styled(item))
        return styled
    return value


def dump_yaml(document: dict[str, Any]) -> str:
    """Write a coverage document as YAML, sections separated by a blank line.

    The output depends only on the document, so an unchanged coverage model
    always exports to the same bytes and a diff of two exports shows exactly
    what changed.
    """
    known = ["version", *SECTION_ORDER]
    keys = [key for key in known if key in document] + [key for key in document if key not in known]
    chunks = []
    for key in keys:
        if key in _ONE_LINE_SECTIONS and isinstance(document[key], list):
            value = [_FlowDict(item) if isinstance(item, dict) else item for item in document[key]]
        else:
            value = _styled(document[key])
        chunks.append(
            yaml.dump(
                {key: value},
                Dumper=_Dumper,
                sort_keys=False,
                allow_unicode=True,
                default_flow_style=False,
                # Long descriptions stay on one line, so editing one word changes one line of a diff.
                width=100_000,
            )
        )
    return "\n".join(chunks)


def load_yaml(text: str) -> dict[str, Any]:
    """Read a coverage document from YAML text.

    Raises CoverageError with the line number when the text is not YAML, and
    when it is YAML but not a mapping at the top.
    """
    try:
        # _Loader is a SafeLoader: it builds plain dicts, lists and scalars only.
        document = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "not valid YAML"
        if mark is None:
            raise CoverageError([("document", f"not valid YAML: {problem}")]) from error
        raise CoverageError(
            [(f"line {mark.line + 1}", f"not valid YAML: {problem} (column {mark.column + 1})")]
        ) from error
    except yaml.YAMLError as error:
        raise CoverageError([("document", f"not valid YAML: {error}")]) from error
    if document is None:
        raise CoverageError([("document", "the document is empty; it needs at least version: 1")])
    if not isinstance(document, dict):
        raise CoverageError([("document", "the document must be a mapping that starts with version: 1")])
    return document
