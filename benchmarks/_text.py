"""Text generators for the benchmark data set: PHP/JS source, SQL-ish words, upload payloads.

Everything here is driven by a ``numpy.random.Generator`` handed in by the caller, so the same seed
gives the same bytes. Code is assembled from a pool of template-filled blocks (methods, functions,
imports) with identifiers drawn from a domain vocabulary: it compresses with zstd about like real
code (3-5x per file), not trivially, and is cheap to produce (a file is a join of pool entries).
"""

from __future__ import annotations

import numpy as np

WORDS = [
    "user",
    "account",
    "order",
    "invoice",
    "payment",
    "customer",
    "product",
    "cart",
    "item",
    "price",
    "tax",
    "discount",
    "coupon",
    "shipment",
    "address",
    "country",
    "city",
    "region",
    "locale",
    "currency",
    "session",
    "token",
    "role",
    "permission",
    "team",
    "project",
    "task",
    "comment",
    "attachment",
    "upload",
    "image",
    "document",
    "report",
    "export",
    "import",
    "queue",
    "job",
    "batch",
    "event",
    "listener",
    "notification",
    "mail",
    "message",
    "channel",
    "webhook",
    "subscription",
    "plan",
    "feature",
    "flag",
    "setting",
    "config",
    "cache",
    "store",
    "repository",
    "service",
    "controller",
    "request",
    "response",
    "resource",
    "policy",
    "middleware",
    "route",
    "view",
    "component",
    "layout",
    "form",
    "field",
    "value",
    "label",
    "title",
    "status",
    "state",
    "type",
    "category",
    "tag",
    "label",
    "author",
    "editor",
    "post",
    "page",
    "menu",
    "link",
    "media",
    "file",
    "folder",
    "path",
    "size",
    "count",
    "total",
    "amount",
    "balance",
    "ledger",
    "entry",
    "transaction",
    "refund",
    "charge",
    "card",
    "bank",
    "transfer",
    "schedule",
    "appointment",
    "booking",
    "slot",
    "calendar",
    "agent",
    "call",
    "transcript",
    "recording",
    "number",
    "phone",
    "contact",
    "lead",
    "campaign",
    "audience",
    "segment",
    "metric",
    "stat",
    "chart",
    "dashboard",
    "widget",
    "filter",
    "sort",
    "search",
    "index",
    "query",
    "builder",
    "factory",
    "provider",
    "adapter",
    "handler",
    "manager",
    "validator",
    "parser",
    "formatter",
    "serializer",
]

VERBS = [
    "get",
    "set",
    "find",
    "create",
    "update",
    "delete",
    "store",
    "load",
    "save",
    "handle",
    "build",
    "make",
    "resolve",
    "validate",
    "parse",
    "format",
    "render",
    "dispatch",
    "send",
    "fetch",
    "sync",
    "apply",
    "compute",
    "check",
    "ensure",
    "register",
    "boot",
    "map",
    "filter",
    "transform",
    "normalize",
    "merge",
    "refresh",
    "restore",
    "archive",
    "publish",
    "notify",
]

PHP_TYPES = ("int", "string", "bool", "array", "float", "?string", "?int", "Collection", "void")


class Vocabulary:
    """Random identifiers in the project's naming styles, drawn from a fixed word list."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        n = 3000
        a = rng.integers(0, len(WORDS), n)
        b = rng.integers(0, len(WORDS), n)
        self.nouns: list[str] = [
            WORDS[i].capitalize() + WORDS[j].capitalize() for i, j in zip(a, b, strict=True)
        ]
        self.nouns += [w.capitalize() for w in WORDS]
        self._i = 0
        self._draws: list[int] = rng.integers(0, 1 << 30, 1 << 16).tolist()

    def _next(self, n: int) -> int:
        i = self._i = (self._i + 1) & 0xFFFF
        if i == 0:
            self._draws = self.rng.integers(0, 1 << 30, 1 << 16).tolist()
        return self._draws[i] % n

    def noun(self) -> str:
        return self.nouns[self._next(len(self.nouns))]

    def word(self) -> str:
        return WORDS[self._next(len(WORDS))]

    def verb(self) -> str:
        return VERBS[self._next(len(VERBS))]

    def var(self) -> str:
        n = self.noun()
        return n[0].lower() + n[1:]

    def pick(self, seq: tuple[str, ...]) -> str:
        return seq[self._next(len(seq))]

    def num(self, hi: int) -> int:
        return self._next(hi)


def php_block(v: Vocabulary) -> str:
    """One PHP method (5-40 lines) of a Laravel-style class."""
    noun, var, verb, field = v.noun(), v.var(), v.verb(), v.var()
    kind = v.num(5)
    head = f"    /**\n     * {verb.capitalize()} the {noun} {v.word()} for the given {field}.\n"
    head += (
        f"     *\n     * @param  {v.pick(PHP_TYPES)}  ${field}\n     * @return {v.pick(PHP_TYPES)}\n     */\n"
    )
    sig = f"    public function {verb}{noun}(${field}, array $options = []): {v.pick(PHP_TYPES)}\n    {{\n"
    body: list[str] = []
    if kind == 0:
        body.append(f"        ${var} = $this->{v.var()}Repository->findBy{v.noun()}(${field});\n")
        body.append(f"        if (${var} === null) {{\n")
        body.append(
            f"            throw new {noun}NotFoundException(sprintf('{noun} %s not found', ${field}));\n"
        )
        body.append("        }\n")
        for _ in range(v.num(6)):
            body.append(f"        ${var}->{v.var()} = $options['{v.word()}_{v.word()}'] ?? {v.num(1000)};\n")
        body.append(f"        return ${var};\n")
    elif kind == 1:
        body.append(f"        return {noun}::query()\n")
        for _ in range(1 + v.num(6)):
            body.append(f"            ->where('{v.word()}_{v.word()}', ${v.var()})\n")
        body.append(f"            ->orderBy('{v.word()}_at', 'desc')\n            ->limit({v.num(500)})\n")
        body.append("            ->get();\n")
    elif kind == 2:
        body.append("        $validated = $request->validate([\n")
        for _ in range(2 + v.num(8)):
            body.append(
                f"            '{v.word()}' => ['required', 'string', 'max:{v.num(255)}', "
                f"new {v.noun()}Rule()],\n"
            )
        body.append("        ]);\n")
        body.append(f"        ${var} = {noun}::create($validated);\n")
        body.append(f"        event(new {noun}{v.pick(('Created', 'Updated', 'Deleted'))}(${var}));\n")
        body.append(
            f"        return redirect()->route('{v.word()}.{v.word()}', ${var})->with('status', '{v.word()}');\n"
        )
    elif kind == 3:
        body.append(f"        foreach (${var}s as $key => ${field}) {{\n")
        for _ in range(1 + v.num(5)):
            body.append(f"            if (${field}->{v.var()}() > {v.num(100)}) {{\n")
            body.append(f"                $this->{v.var()}[$key] = ${field}->{v.verb()}{v.noun()}();\n")
            body.append("                continue;\n            }\n")
        body.append("        }\n")
        body.append(f"        return collect($this->{v.var()})->filter()->values();\n")
    else:
        body.append("        try {\n")
        body.append(f"            ${var} = $this->{v.var()}Service->{v.verb()}{v.noun()}(${field});\n")
        body.append("        } catch (\\Throwable $e) {\n")
        body.append(
            f"            Log::{v.pick(('error', 'warning', 'info'))}('{v.word()} {v.word()} failed', "
            f"['{v.word()}' => ${field}, 'exception' => $e->getMessage()]);\n"
        )
        body.append("            return null;\n        }\n")
        body.append(f"        return new {noun}Resource(${var});\n")
    return head + sig + "".join(body) + "    }\n\n"


def js_block(v: Vocabulary) -> str:
    """One JavaScript function/const/export block (3-30 lines)."""
    noun, var, verb = v.noun(), v.var(), v.verb()
    kind = v.num(4)
    if kind == 0:
        lines = [f"export function {verb}{noun}({var}, options = {{}}) {{\n"]
        lines.append(f"  const {v.var()} = {{ ...defaults, ...options, {v.word()}: {v.num(100)} }};\n")
        for _ in range(1 + v.num(5)):
            lines.append(
                f"  if (!{var}.{v.var()}) {{\n    return {v.pick(('null', 'undefined', 'false', '[]'))};\n  }}\n"
            )
        lines.append(f"  return {var}.{v.var()}.map((x) => x.{v.var()}).filter(Boolean);\n}}\n\n")
    elif kind == 1:
        lines = [f"const {var} = {{\n"]
        for _ in range(2 + v.num(8)):
            lines.append(f"  {v.var()}: '{v.word()}-{v.word()}',\n")
        lines.append("};\n\n")
    elif kind == 2:
        lines = [f"async function {verb}{noun}(id) {{\n"]
        lines.append(
            f"  const response = await axios.{v.pick(('get', 'post', 'put', 'delete'))}(`/api/{v.word()}/${{id}}`);\n"
        )
        lines.append(f"  if (response.status !== {200 + v.num(5)}) {{\n")
        lines.append(f"    throw new Error('{v.word()} {v.word()} failed: ' + response.status);\n  }}\n")
        lines.append(f"  store.commit('{v.word()}/{verb}{noun}', response.data.{v.var()});\n")
        lines.append("  return response.data;\n}\n\n")
    else:
        lines = [f"{noun}.prototype.{verb} = function {verb}(a, b) {{\n"]
        lines.append("  var self = this;\n")
        for _ in range(1 + v.num(6)):
            lines.append(
                f"  self._{v.var()} = typeof a === '{v.pick(('string', 'number', 'object'))}' ? a.{v.var()} : b;\n"
            )
        lines.append(f"  return self.emit('{v.word()}', self._{v.var()});\n}};\n\n")
    return "".join(lines)


class BlockPool:
    """A fixed pool of code blocks; files are assembled from random picks of it."""

    def __init__(self, rng: np.random.Generator, size: int = 12000) -> None:
        self.vocab = Vocabulary(rng)
        self.rng = rng
        self.php = [php_block(self.vocab) for _ in range(size)]
        self.js = [js_block(self.vocab) for _ in range(size)]
        self.php_len = np.array([len(b) for b in self.php])
        self.js_len = np.array([len(b) for b in self.js])

    def body(self, lang: str, target: int) -> str:
        """Blocks of ``lang`` ('php' or 'js') adding up to about ``target`` characters."""
        blocks, lens = (self.php, self.php_len) if lang == "php" else (self.js, self.js_len)
        k = max(1, int(target // 400) + 4)
        idx = self.rng.integers(0, len(blocks), k)
        csum = np.cumsum(lens[idx])
        n = int(np.searchsorted(csum, target)) + 1
        return "".join(blocks[i] for i in idx[:n])

    def php_file(self, target: int) -> str:
        v = self.vocab
        ns = "\\".join(v.noun() for _ in range(1 + v.num(3)))
        head = f"<?php\n\nnamespace App\\{ns};\n\n"
        head += "".join(f"use App\\{v.noun()}\\{v.noun()};\n" for _ in range(2 + v.num(10)))
        head += f"\nclass {v.noun()}{v.pick(('Controller', 'Service', 'Repository', 'Job', 'Listener', 'Policy'))}"
        head += f" extends {v.noun()}\n{{\n"
        props = "".join(f"    protected ${v.var()} = {v.num(100)};\n" for _ in range(v.num(6))) + "\n"
        return head + props + self.body("php", target - len(head)) + "}\n"

    def js_file(self, target: int) -> str:
        v = self.vocab
        head = "'use strict';\n\n" + "".join(
            f"import {{ {v.var()}, {v.var()} }} from './{v.word()}/{v.word()}';\n"
            for _ in range(1 + v.num(8))
        )
        return head + "\n" + self.body("js", target - len(head))
