"""``calculator``: arithmetic on a parsed expression tree. No ``eval``: only numbers, + - * / // % **,
a few math functions and constants are accepted; anything else (names, attributes, calls to other
functions, comprehensions) is refused before any evaluation."""

from __future__ import annotations

import ast
import math
import operator

from tlcli_agents.tools import Tool, ToolError

MAX_LENGTH = 500
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "log": math.log, "log10": math.log10, "exp": math.exp, "sin": math.sin,
              "cos": math.cos, "tan": math.tan, "abs": abs, "round": round, "min": min, "max": max,
              "floor": math.floor, "ceil": math.ceil}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression; ToolError naming what is not allowed otherwise."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise ToolError(f"not an arithmetic expression ({error.msg})") from None
    try:
        return _value(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, ValueError) as error:
        raise ToolError(f"math error: {error}") from None


def _value(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is larger than {MAX_EXPONENT}")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise ToolError("result too large")
        if isinstance(result, complex):
            raise ToolError("result is not a real number")
        return result
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords and 1 <= len(node.args) <= 8):
        return _FUNCTIONS[node.func.id](*(_value(a) for a in node.args))
    shown = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise ToolError(f"{shown!r} is not allowed: use numbers, + - * / // % **, parentheses, "
                    f"{', '.join(_FUNCTIONS)} and {', '.join(_CONSTANTS)}")


def _run(arguments: dict) -> str:
    expression = arguments.get("expression")
    if not isinstance(expression, str):
        raise ToolError("calculator takes {\"expression\": \"2 * (3 + 4)\"}")
    value = evaluate(expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def calculator_tool() -> Tool:
    return Tool("calculator", "calculator", "Evaluate an arithmetic expression, e.g. 17 * (3 + 4) / 2 or sqrt(2).",
                {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
                _run)
