"""The hostile-input corpus: deploy.yaml texts, secret files, ledgers and raw HTTP requests.

Each case is a name, what it targets, a function that makes its bytes, and what must come of
it. ``probe.py`` runs one case in a process of its own and measures it; ``test_hostile.py``
runs them all (in CI, like every test) and asserts the outcome, under 2 s and under 200 MB.

Generated rather than stored: several cases are megabytes (or, expanded, gigabytes) of
repetition, and a function of a few lines says what each one is better than the bytes would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

#: The emulator's API key in the HTTP cases (``{KEY}`` in a request is replaced by it).
KEY = "rpa_HOSTILE_0123456789abcdef"
#: In the env of a template the probe saves first: no answer to a request may contain it
#: (account data through a fragment, an echo of the template...).
ACCOUNT_SECRET = "hf_ACCOUNT_SECRET_5e8c01d7"

BASE_YAML = """\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
endpoint:
  name: hostile-test
"""


@dataclass(frozen=True)
class Case:
    kind: str  # deploy_yaml | secret | ledger | http
    name: str
    make: Callable[[], bytes]
    #: deploy_yaml/secret/ledger: the exit code (3); http: the allowed statuses (None: the server
    #: closes the connection without an answer, which is what a stalled request gets).
    expect: tuple[int | None, ...] = (3,)
    #: http: seconds the client waits for an answer (stalled requests wait for the server's timeout).
    wait: float = 1.5

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


def _yaml(text: str) -> Callable[[], bytes]:
    return lambda: text.encode("utf-8")


def _billion_laughs(levels: int = 9, fan: int = 9) -> bytes:
    lines = ["method: worker-vllm", "model: {name: Qwen/Qwen2.5-7B-Instruct}", "endpoint: {name: hostile-test}"]
    lines.append('a0: &a0 ["lol"]')
    for level in range(1, levels + 1):
        refs = ", ".join(f"*a{level - 1}" for _ in range(fan))
        lines.append(f"a{level}: &a{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def _merge_bomb(levels: int = 16) -> bytes:
    lines = ["k0: &k0 {x: 1, y: 2}"]
    for level in range(1, levels + 1):
        lines.append(f"k{level}: &k{level} {{<<: [*k{level - 1}], a{level}: [*k{level - 1}, *k{level - 1}]}}")
    return (BASE_YAML + "\n".join(lines) + "\n").encode()


def _deep_flow(depth: int) -> bytes:
    return (BASE_YAML + "extra: " + "[" * depth + "]" * depth + "\n").encode()


def _deep_block(depth: int) -> bytes:
    lines = [BASE_YAML.rstrip("\n"), "extra:"]
    for level in range(1, depth):
        lines.append("  " * level + f"k{level}:")
    lines.append("  " * depth + "leaf: 1")
    return ("\n".join(lines) + "\n").encode()


def _many_env(count: int) -> bytes:
    body = "\n".join(f"    V{i}: x" for i in range(count))
    return (BASE_YAML + "  env:\n" + body + "\n").encode()


DEPLOY_YAML = [
    Case("deploy_yaml", "billion-laughs", _billion_laughs),
    Case("deploy_yaml", "laughs-wide-and-shallow", lambda: _billion_laughs(levels=4, fan=60)),
    Case("deploy_yaml", "merge-key-bomb", _merge_bomb),
    Case("deploy_yaml", "recursive-alias-sequence", _yaml(BASE_YAML + "loop: &a [1, *a]\n")),
    Case("deploy_yaml", "recursive-alias-mapping", _yaml(BASE_YAML + "loop: &a {self: *a}\n")),
    Case("deploy_yaml", "recursive-alias-in-merge", _yaml(BASE_YAML + "loop: &a {<<: *a}\n")),
    Case("deploy_yaml", "undefined-alias", _yaml(BASE_YAML + "x: *nowhere\n")),
    Case("deploy_yaml", "deep-flow-nesting", lambda: _deep_flow(50_000)),
    Case("deploy_yaml", "deep-block-nesting", lambda: _deep_block(3_000)),
    Case("deploy_yaml", "deep-flow-mappings", _yaml(BASE_YAML + "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")),
    Case(
        "deploy_yaml",
        "integer-5000-digits",
        _yaml(BASE_YAML.replace("name: hostile-test", "name: hostile-test\n  workers_max: " + "9" * 5000)),
    ),
    Case("deploy_yaml", "integer-4301-digits-tagged", _yaml(BASE_YAML + "x: !!int " + "1" * 4301 + "\n")),
    Case("deploy_yaml", "float-100k-digits", _yaml(BASE_YAML + "x: 0." + "1" * 100_000 + "\n")),
    Case("deploy_yaml", "hex-integer-huge", _yaml(BASE_YAML + "x: 0x" + "f" * 50_000 + "\n")),
    Case("deploy_yaml", "field-900k-characters", _yaml(BASE_YAML.replace("hostile-test", "n" * 900_000))),
    Case("deploy_yaml", "key-500k-characters", _yaml(BASE_YAML + "k" * 500_000 + ": 1\n")),
    Case("deploy_yaml", "file-of-2-mib", lambda: (BASE_YAML + "#" * (2 * 1024 * 1024) + "\n").encode()),
    Case("deploy_yaml", "file-of-50-mib", lambda: (BASE_YAML + ("# " + "x" * 1022 + "\n") * 50 * 1024).encode()),
    Case("deploy_yaml", "30000-env-entries", lambda: _many_env(30_000)),
    Case(
        "deploy_yaml",
        "1000-anchors-and-aliases",
        _yaml(BASE_YAML + "".join(f"a{i}: &x{i} [1]\nb{i}: *x{i}\n" for i in range(1000))),
    ),
    Case("deploy_yaml", "duplicate-keys-10000", _yaml(BASE_YAML + "dup: 1\n" * 10_000)),
    Case("deploy_yaml", "not-utf8", lambda: BASE_YAML.encode() + b"x: \xff\xfe\xfa\n"),
    Case("deploy_yaml", "utf16-with-bom", lambda: BASE_YAML.encode("utf-16")),
    Case("deploy_yaml", "nul-byte", lambda: BASE_YAML.encode() + b"x: a\x00b\n"),
    Case("deploy_yaml", "control-characters", lambda: BASE_YAML.encode() + b"x: \x1b[31m\x07\n"),
    Case(
        "deploy_yaml",
        "python-object-tag",
        _yaml(BASE_YAML + 'x: !!python/object/apply:os.system ["touch /tmp/pwned"]\n'),
    ),
    Case("deploy_yaml", "complex-mapping-key", _yaml(BASE_YAML + "? [a, b]\n: 1\n")),
    Case("deploy_yaml", "multi-document", _yaml(BASE_YAML + "---\n" + BASE_YAML)),
    Case("deploy_yaml", "unterminated-quote-at-900k", _yaml(BASE_YAML + "x: '" + "y" * 900_000 + "\n")),
    Case("deploy_yaml", "name-with-escape-and-bidi", _yaml(BASE_YAML.replace("hostile-test", '"a\\e[2Jb\\u202ec\\a"'))),
    Case(
        "deploy_yaml",
        "worker-dir-escapes",
        _yaml(
            "method: custom-handler\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\n"
            "image: {registry: ghcr.io, repository: acme/w, worker_dir: ../../../tmp/x}\n"
            "endpoint: {name: hostile-test}\n"
        ),
    ),
    Case("deploy_yaml", "service-as-option", _yaml(BASE_YAML + "backend: {service: -Hroot@evil}\n")),
    Case("deploy_yaml", "service-dot-dot", _yaml(BASE_YAML + "backend: {service: ..}\n")),
]

SECRET_YAML = BASE_YAML + "runpod: {api_key: {file: SECRET_PATH}}\n"

#: Secret files: ``make`` gives the file's bytes, or the path to point at when it starts with b"@".
#: The file is the RunPod API key's, so the refusal is exit 8 (the exit-code table: "RunPod API key
#: missing, invalid or without permission"; rpdeploy.config.ApiKeyRef), not 3.
API_KEY_REFUSED = (8,)
SECRETS = [
    Case("secret", "dev-zero", lambda: b"@/dev/zero", expect=API_KEY_REFUSED),
    Case("secret", "dev-urandom", lambda: b"@/dev/urandom", expect=API_KEY_REFUSED),
    Case("secret", "a-folder", lambda: b"@/", expect=API_KEY_REFUSED),
    Case("secret", "not-utf8", lambda: b"rpa_\xff\xfe\xfd", expect=API_KEY_REFUSED),
    Case("secret", "nul-byte", lambda: b"rpa_abc\x00def", expect=API_KEY_REFUSED),
    Case("secret", "one-mib", lambda: b"x" * (1024 * 1024), expect=API_KEY_REFUSED),
    Case("secret", "empty", lambda: b"   \n", expect=API_KEY_REFUSED),
    Case("secret", "missing", lambda: b"@/nonexistent/secret", expect=API_KEY_REFUSED),
]


def _ledger(document: object) -> Callable[[], bytes]:
    return lambda: json.dumps(document).encode()


_STAGE = {"status": "done", "fingerprint": "f", "outputs": {}}
LEDGERS = [
    Case("ledger", "a-list", _ledger([])),
    Case("ledger", "a-string", _ledger("state")),
    Case("ledger", "a-number", _ledger(7)),
    Case("ledger", "null", _ledger(None)),
    Case("ledger", "version-as-string", _ledger({"version": "1", "stages": {}})),
    Case("ledger", "version-3", _ledger({"version": 3})),  # 1 (migrated) and 2 are read
    Case("ledger", "stages-a-list", _ledger({"version": 1, "stages": []})),
    Case("ledger", "stage-a-string", _ledger({"version": 1, "stages": {"build": "done"}})),
    Case("ledger", "stage-without-status", _ledger({"version": 1, "stages": {"build": {"outputs": {}}}})),
    Case("ledger", "status-unknown", _ledger({"version": 1, "stages": {"build": {**_STAGE, "status": "maybe"}}})),
    Case("ledger", "outputs-a-string", _ledger({"version": 1, "stages": {"build": {**_STAGE, "outputs": "x"}}})),
    Case(
        "ledger",
        "outputs-urls-a-string",
        _ledger({"version": 1, "stages": {"endpoint": {**_STAGE, "outputs": {"endpoint_id": "e", "urls": "u"}}}}),
    ),
    Case(
        "ledger",
        "endpoint-id-a-number",
        _ledger({"version": 1, "stages": {"endpoint": {**_STAGE, "outputs": {"endpoint_id": 5}}}}),
    ),
    Case("ledger", "fingerprint-a-list", _ledger({"version": 1, "stages": {"build": {**_STAGE, "fingerprint": []}}})),
    Case("ledger", "history-a-number", _ledger({"version": 1, "history": 3})),
    Case("ledger", "history-of-strings", _ledger({"version": 1, "history": ["a", "b"]})),
    Case("ledger", "extra-a-list", _ledger({"version": 1, "extra": []})),
    Case("ledger", "deep-nesting", lambda: b'{"version": 1, "extra": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"),
    Case("ledger", "nested-80-levels", lambda: b'{"version": 1, "extra": {"x": ' + b"[" * 80 + b"]" * 80 + b"}}"),
    Case("ledger", "two-mib", lambda: json.dumps({"version": 1, "extra": {"pad": "x" * (2 * 1024 * 1024)}}).encode()),
    Case(
        "ledger",
        "100k-stages-in-one-mib",
        lambda: json.dumps({"version": 1, "stages": {f"s{i}": "x" for i in range(100_000)}})[
            : 1024 * 1024 - 2
        ].encode(),
    ),
    Case("ledger", "not-json", lambda: b"{version: 1"),
    Case("ledger", "not-utf8", lambda: b'{"version": 1, "x": "\xff"}'),
    Case("ledger", "huge-integer", lambda: b'{"version": 1, "updated_at": ' + b"9" * 5000 + b"}"),
]


def _request(
    method: str, path: str, body: bytes = b"", *, headers: dict[str, str] | None = None, key: bool = True
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if key:
        head.append("Authorization: Bearer {KEY}")
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if body and not any(name.lower() in ("content-length", "transfer-encoding") for name in headers or {}):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _graphql(query: str, *, key: bool = True, variables: object = None) -> Callable[[], bytes]:
    def make() -> bytes:
        document: dict[str, object] = {"query": query}
        if variables is not None:
            document["variables"] = variables
        return _request("POST", "/graphql", json.dumps(document).encode(), key=key,
                        headers={"Content-Type": "application/json"})  # fmt: skip

    return make


def _fragment_bomb(levels: int = 25) -> str:
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ gpuTypes {{ id }} }}")
    return "query { ...F0 } " + " ".join(fragments)


_DENIED = (401,)
#: Without a key: refused (401), or run without an account (200, ``myself`` null: RunPod's way,
#: which the control plane may take). Either way no account data: see ACCOUNT_SECRET.
_NO_ACCOUNT = (401, 200)
_BAD = (400, 413)
HTTP = [
    # Authorization after parsing: public first field, private through fragments or aliases.
    Case(
        "http",
        "myself-through-inline-fragment",
        _graphql("query { gpuTypes { id } ... on Query { myself { podTemplates { env { key value } } } } }", key=False),
        _NO_ACCOUNT,
    ),
    Case(
        "http",
        "myself-through-named-fragment",
        _graphql(
            "query { gpuTypes { id } ...M } fragment M on Query { myself { podTemplates { env { key value } } } }",
            key=False,
        ),
        _NO_ACCOUNT,
    ),
    Case(
        "http",
        "myself-through-nested-fragments",
        _graphql(
            "{ ...A } fragment A on Query { dataCenters { id } ...B } "
            "fragment B on Query { ... on Query { myself { podTemplates { env { key value } } } } }",
            key=False,
        ),
        _NO_ACCOUNT,
    ),
    Case(
        "http",
        "myself-aliased-as-gpuTypes",
        _graphql("query { gpuTypes: myself { podTemplates { env { key value } } } }", key=False),
        _NO_ACCOUNT,
    ),
    Case(
        "http",
        "second-operation-private",
        _graphql("query A { gpuTypes { id } } query B { myself { podTemplates { env { key value } } } }", key=False),
        (*_NO_ACCOUNT, 400),
    ),
    Case(
        "http", "mutation-without-key", _graphql('mutation { deleteTemplate(templateName: "x") }', key=False), _DENIED
    ),
    Case("http", "introspection-without-key", _graphql("{ __schema { types { name } } }", key=False), _NO_ACCOUNT),
    Case("http", "public-query-still-works", _graphql("{ gpuTypes { id } }", key=False), (200,)),
    # Query cost.
    Case(
        "http", "1600-aliases", _graphql("{ " + " ".join(f"a{i}: gpuTypes {{ id }}" for i in range(1600)) + " }"), _BAD
    ),
    Case(
        "http",
        "20000-aliases-over-size",
        _graphql("{ " + " ".join(f"a{i}: gpuTypes {{ id }}" for i in range(20_000)) + " }"),
        _BAD,
    ),
    Case("http", "depth-40", _graphql("{ gpuTypes " + "{ a " * 40 + "}" * 40 + " }"), _BAD),
    Case("http", "selection-nesting-10000", _graphql("{" * 10_000 + "}" * 10_000), _BAD),
    Case(
        "http",
        "deep-inside-a-fragment",
        _graphql("{ ...X } fragment X on Query { gpuTypes " + "{ a " * 30 + "}" * 30 + " }"),
        _BAD,
    ),
    Case(
        "http", "fragment-cycle", _graphql("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"), _BAD
    ),
    Case("http", "fragment-bomb-2-to-the-25", _graphql(_fragment_bomb()), _BAD),
    Case("http", "6000-tokens", _graphql("{ gpuTypes { " + "id " * 6000 + "} }"), _BAD),
    Case("http", "10k-comments", _graphql("#c\n" * 10_000 + "{ gpuTypes { id } }"), (200, 400, 413)),
    Case("http", "query-not-a-string", lambda: _request("POST", "/graphql", b'{"query": {"a": 1}}'), _BAD),
    Case(
        "http",
        "variables-deep",
        _graphql("{ gpuTypes { id } }", variables={"v": json.loads("[" * 60 + "]" * 60)}),
        (*_BAD, 200),
    ),
    # Bodies.
    Case("http", "json-nested-100k", lambda: _request("POST", "/graphql", b"[" * 100_000 + b"]" * 100_000), _BAD),
    Case("http", "json-300k-values", lambda: _request("POST", "/graphql", b"[" + b"0," * 300_000 + b"0]"), _BAD),
    Case(
        "http",
        "graphql-body-2-mib",
        lambda: _request("POST", "/graphql", b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
        _BAD,
    ),
    Case("http", "not-json", lambda: _request("POST", "/graphql", b"query { gpuTypes { id } }"), _BAD),
    Case("http", "invalid-utf8", lambda: _request("POST", "/graphql", b'{"query": "\xff\xfe"}'), _BAD),
    Case(
        "http",
        "content-length-negative",
        lambda: _request("POST", "/graphql", b"{}", headers={"Content-Length": "-1"}),
        _BAD,
    ),
    Case(
        "http",
        "content-length-not-a-number",
        lambda: _request("POST", "/graphql", b"{}", headers={"Content-Length": "abc"}),
        _BAD,
    ),
    Case(
        "http",
        "content-length-10-to-the-30",
        lambda: _request("POST", "/graphql", b"{}", headers={"Content-Length": "1" + "0" * 30}),
        _BAD,
    ),
    Case(
        "http",
        "chunked-bad-size",
        lambda: _request("POST", "/graphql", b"zz\r\nabc\r\n0\r\n\r\n", headers={"Transfer-Encoding": "chunked"}),
        _BAD,
    ),
    Case(
        "http",
        "chunked-huge-size",
        lambda: _request("POST", "/graphql", b"fffffffffff\r\nabc", headers={"Transfer-Encoding": "chunked"}),
        _BAD,
    ),
    Case(
        "http",
        "chunked-endless-trailers",
        lambda: _request(
            "POST", "/graphql", b"0\r\n" + b"X-T: y\r\n" * 500 + b"\r\n", headers={"Transfer-Encoding": "chunked"}
        ),
        _BAD,
    ),
    # Stalls: the server drops them after its socket timeout (1 s in the probe).
    Case("http", "stalled-in-headers", lambda: b"POST /graphql HTTP/1.1\r\nHost: x\r\n", (None, 408), wait=1.8),
    Case(
        "http",
        "stalled-in-body",
        lambda: b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        (None, 408),
        wait=1.8,
    ),
    Case("http", "nothing-sent", lambda: b"", (None, 408), wait=1.8),
    # HTTP framing.
    Case("http", "request-line-100k", lambda: b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", (414, 400)),
    Case("http", "500-headers", lambda: b"GET /graphql HTTP/1.1\r\n" + b"X-A: b\r\n" * 500 + b"\r\n", (431, 400)),
    Case(
        "http", "header-line-100k", lambda: b"GET /graphql HTTP/1.1\r\nX-A: " + b"b" * 100_000 + b"\r\n\r\n", (431, 400)
    ),
    Case("http", "garbage-request-line", lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", (400, None)),
    Case("http", "unknown-method", lambda: _request("BREW", "/graphql"), (501, 405)),
    Case(
        "http",
        "1000-query-parameters",
        lambda: _request("GET", "/v2/ep/health?" + "&".join(f"p{i}=1" for i in range(1000))),
        _BAD,
    ),
    # Invoke routes.
    Case(
        "http", "run-without-key", lambda: _request("POST", "/v2/{ENDPOINT}/run", b'{"input": {}}', key=False), _DENIED
    ),
    Case(
        "http",
        "run-wrong-key",
        lambda: _request("POST", "/v2/{ENDPOINT}/run?api_key=rpa_wrong", b'{"input": {}}', key=False),
        _DENIED,
    ),
    Case(
        "http",
        "run-input-nested-100k",
        lambda: _request("POST", "/v2/{ENDPOINT}/run", b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        _BAD,
    ),
    Case(
        "http",
        "run-input-1m-empty-lists",
        lambda: _request("POST", "/v2/{ENDPOINT}/run", b'{"input": {"x": [' + b"[]," * 1_000_000 + b"[]]}}"),
        _BAD,
    ),
    Case("http", "run-input-not-an-object", lambda: _request("POST", "/v2/{ENDPOINT}/run", b'{"input": "x"}'), _BAD),
    Case(
        "http",
        "runsync-25-mb",
        lambda: _request("POST", "/v2/{ENDPOINT}/runsync", b'{"input": {"p": "' + b"x" * (25 * 1024 * 1024) + b'"}}'),
        _BAD,
    ),
    Case(
        "http", "status-id-5000-characters", lambda: _request("GET", "/v2/{ENDPOINT}/status/" + "j" * 5000), (404, 400)
    ),
    Case("http", "stream-unknown-job", lambda: _request("GET", "/v2/{ENDPOINT}/stream/nope"), (404, 400)),
    Case(
        "http",
        "openai-deep-body",
        lambda: _request(
            "POST",
            "/v2/{ENDPOINT}/openai/v1/chat/completions",
            b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ),
        _BAD,
    ),
    Case("http", "path-traversal-to-admin", lambda: _request("GET", "/v2/../_emulator/state", key=False), (401, 404)),
    # Admin payloads.
    Case("http", "admin-without-key", lambda: _request("GET", "/_emulator/state", key=False), _DENIED),
    Case(
        "http", "admin-faults-garbage", lambda: _request("POST", "/_emulator/faults", b'[1, "x", {"fault": 5}]'), _BAD
    ),
    Case(
        "http",
        "admin-fault-bad-seconds",
        lambda: _request("POST", "/_emulator/faults", b'{"fault": "graphql_delay", "seconds": "soon"}'),
        _BAD,
    ),
    Case(
        "http",
        "admin-volume-size-a-string",
        lambda: _request("POST", "/_emulator/network-volumes", b'{"name": "v", "size": "abc"}'),
        _BAD,
    ),
    Case(
        "http",
        "admin-volume-size-1e309",
        lambda: _request("POST", "/_emulator/network-volumes", b'{"name": "v", "size": 1e309}'),
        _BAD,
    ),
    Case(
        "http",
        "admin-volume-name-a-list",
        lambda: _request("POST", "/_emulator/network-volumes", b'{"name": ["v"]}'),
        _BAD,
    ),
    Case(
        "http", "admin-deep-body", lambda: _request("POST", "/_emulator/faults", b"[" * 100_000 + b"]" * 100_000), _BAD
    ),
]

ALL: list[Case] = [*DEPLOY_YAML, *SECRETS, *LEDGERS, *HTTP]
BY_ID = {case.id: case for case in ALL}
assert len(BY_ID) == len(ALL), "case names must be unique"
