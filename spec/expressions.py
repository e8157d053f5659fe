"""JSONata as the definition writes it: the ``{% ... %}`` marker, and SQL templates turned into JSONata
string expressions (so no SQL is assembled by string formatting).

Sources: docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html (JSONata).
"""

from __future__ import annotations

import json

from spec import queries


def expr(jsonata: str) -> str:
    """Wrap a JSONata expression the way ASL marks one."""
    return "{% " + jsonata + " %}"


def template_expression(template: str, values: dict[str, str]) -> str:
    """Turn a SQL template with ``{placeholders}`` into a JSONata string-concatenation expression.

    Literal text becomes JSON string literals (valid JSONata strings, so quotes need no hand-escaping);
    each placeholder becomes the JSONata expression given for it. Unknown or unused placeholders fail.
    """
    names = queries.placeholders(template)
    missing = sorted(set(names) - values.keys())
    unused = sorted(values.keys() - set(names))
    if missing or unused:
        raise ValueError(f"template placeholders missing values {missing} / values unused {unused}")
    parts: list[str] = []
    rest = template
    for match in list(queries.PLACEHOLDER.finditer(template))[::-1]:
        head, tail = rest[: match.start()], rest[match.end() :]
        if tail:
            parts.append(json.dumps(tail))
        parts.append("(" + values[match.group(1)] + ")")
        rest = head
    if rest:
        parts.append(json.dumps(rest))
    return expr(" & ".join(reversed(parts)))


def sql_text(jsonata: str) -> str:
    """A JSONata expression's value made safe inside a SQL string literal (quotes doubled)."""
    return f'$replace({jsonata}, "\'", "\'\'")'


def s3_uri_parts(location: str) -> tuple[str, str]:
    """JSONata expressions for the bucket and key of an ``s3://bucket/key`` URI expression."""
    without_scheme = f"$substringAfter({location}, 's3://')"
    return f"$substringBefore({without_scheme}, '/')", f"$substringAfter({without_scheme}, '/')"
