"""EvalPlus's code sanitiser (`evalplus/sanitize.py`, Apache-2.0), ported as is.

`sanitize(code, entrypoint)` keeps the longest syntactically valid stretch of lines, then only
its imports and the top-level classes, functions (with a `return`) and assignments the entry
point reaches; it parses with tree-sitter exactly as EvalPlus does, so a reply sanitises to the
same program here as under `evalplus.sanitize`.
"""

from __future__ import annotations

import ast
from collections.abc import Generator

import tree_sitter_python
from tree_sitter import Language, Node, Parser

CLASS_TYPE = "class_definition"
FUNCTION_TYPE = "function_definition"
IMPORT_TYPE = ["import_statement", "import_from_statement"]
IDENTIFIER_TYPE = "identifier"
RETURN_TYPE = "return_statement"
EXPRESSION_TYPE = "expression_statement"
ASSIGNMENT_TYPE = "assignment"

_PARSER = Parser(Language(tree_sitter_python.language()))


def syntax_check(code: str) -> bool:
    """EvalPlus's `syncheck.syntax_check`: does `ast.parse` accept the code?"""
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return False
    return True


def code_extract(text: str) -> str:
    """The longest run of lines (by non-blank lines) that parses (EvalPlus `code_extract`)."""
    lines = text.split("\n")
    longest_line_pair = (0, 0)
    longest_so_far = 0
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            current_lines = "\n".join(lines[i : j + 1])
            if syntax_check(current_lines):
                current_length = sum(1 for line in lines[i : j + 1] if line.strip())
                if current_length > longest_so_far:
                    longest_so_far = current_length
                    longest_line_pair = (i, j)
    return "\n".join(lines[longest_line_pair[0] : longest_line_pair[1] + 1])


def _deps(nodes: list[tuple[str, Node]]) -> dict[str, set[str]]:
    def collect(node: Node, deps: set[str]) -> None:
        for child in node.children:
            if child.type == IDENTIFIER_TYPE:
                deps.add(child.text.decode("utf8"))
            else:
                collect(child, deps)

    name2deps: dict[str, set[str]] = {}
    for name, node in nodes:
        deps: set[str] = set()
        collect(node, deps)
        name2deps[name] = deps
    return name2deps


def _reachable(entrypoint: str, call_graph: dict[str, set[str]]) -> set[str]:
    queue = [entrypoint]
    visited = {entrypoint}
    while queue:
        current = queue.pop(0)
        for neighbour in call_graph.get(current, ()):
            if neighbour not in visited:
                visited.add(neighbour)
                queue.append(neighbour)
    return visited


def _definition_name(node: Node) -> str | None:
    for child in node.children:
        if child.type == IDENTIFIER_TYPE:
            return child.text.decode("utf8")
    return None


def _traverse(node: Node) -> Generator[Node, None, None]:
    cursor = node.walk()
    depth = 0
    visited_children = False
    while True:
        if not visited_children:
            yield cursor.node
            if not cursor.goto_first_child():
                depth += 1
                visited_children = True
        elif cursor.goto_next_sibling():
            visited_children = False
        elif not cursor.goto_parent() or depth == 0:
            break
        else:
            depth -= 1


def _has_return(node: Node) -> bool:
    return any(child.type == RETURN_TYPE for child in _traverse(node))


def extract_target_code_or_empty(code: str, entrypoint: str | None = None) -> str:
    """Imports, then the definitions `entrypoint` reaches (all of them without one)."""
    code = code_extract(code)
    code_bytes = bytes(code, "utf8")
    root_node = _PARSER.parse(code_bytes).root_node
    class_names: set[str | None] = set()
    function_names: set[str | None] = set()
    variable_names: set[str | None] = set()
    import_nodes = []
    definition_nodes: list[tuple[str, Node]] = []
    for child in root_node.children:
        if child.type in IMPORT_TYPE:
            import_nodes.append(child)
        elif child.type == CLASS_TYPE:
            name = _definition_name(child)
            if not (name in class_names or name in variable_names or name in function_names):
                definition_nodes.append((name, child))  # type: ignore[arg-type]
                class_names.add(name)
        elif child.type == FUNCTION_TYPE:
            name = _definition_name(child)
            if not (
                name in function_names or name in variable_names or name in class_names
            ) and _has_return(child):
                definition_nodes.append((name, child))  # type: ignore[arg-type]
                function_names.add(name)
        elif child.type == EXPRESSION_TYPE and child.children[0].type == ASSIGNMENT_TYPE:
            subchild = child.children[0]
            name = _definition_name(subchild)
            if not (name in variable_names or name in function_names or name in class_names):
                definition_nodes.append((name, subchild))  # type: ignore[arg-type]
                variable_names.add(name)
    reachable: set[str] = set()
    if entrypoint:
        reachable = _reachable(entrypoint, _deps(definition_nodes))
    sanitized = b""
    for node in import_nodes:
        sanitized += code_bytes[node.start_byte : node.end_byte] + b"\n"
    for name, node in definition_nodes:
        if entrypoint and name not in reachable:
            continue
        sanitized += code_bytes[node.start_byte : node.end_byte] + b"\n"
    return sanitized[:-1].decode("utf8")


def sanitize(code: str, entrypoint: str | None = None) -> str:
    """EvalPlus's `sanitize`: the target function and what it needs, else the longest valid
    stretch of code."""
    sanitized_code = extract_target_code_or_empty(code, entrypoint).strip()
    if not sanitized_code:
        return code_extract(code)
    return sanitized_code
