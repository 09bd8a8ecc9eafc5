"""crd_like.compose_files: compose secrets and configs that are not files (``environment:``,
``content:``) become native ``files`` entries; every form, the defaults, the errors, what
is deferred to apply, and that secret text never reaches an output path."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like import InvalidSpec
from crd_like.formats import LoadOptions, load_any, to_native_yaml
from crd_like.hashing import spec_hash
from crd_like.models import ServiceSpec
from crd_like.secrets import SECRET_PLACEHOLDER, redact_spec, secret_keys
from crd_like.spec_files import parse_mode

DIR = "/srv/cf"
FILE = "cf/compose.yaml"
FILES = {"/srv/cf/pw.txt": b"from-file\n", "/srv/cf/.env": b"DOTENV_PW=dot-secret\nPLAIN=plain-value\n"}
ENV = {"DB_PASSWORD": "s3cret-pw", "APP_CONF": "a=1", "API_TOKEN": "tok-xyz"}


def reader(path: str) -> bytes:
    if path not in FILES:
        raise FileNotFoundError(path)
    return FILES[path]


def convert(text: str, environ: dict[str, str] | None = None) -> tuple[Any, LoadOptions]:
    opts = LoadOptions(environ=ENV if environ is None else environ, read_file=reader)
    [res] = load_any([(text.encode(), FILE, DIR)], opts)
    return res, opts


def spec_files(uses: str, top: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    text = f"name: cf\nservices:\n  s:\n    image: x\n{uses}\n{top}"
    res, _ = convert(text, environ)
    return res.spec.model_dump(mode="json", exclude_defaults=True).get("files", {})


CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("secret from the environment, short form", "    secrets: [db]", "secrets: {db: {environment: DB_PASSWORD}}",
     {"/run/secrets/db": {"secret": "s3cret-pw", "source": "secret db"}}),
    ("secret from .env", "    secrets: [db]", "secrets: {db: {environment: DOTENV_PW}}",
     {"/run/secrets/db": {"secret": "dot-secret", "source": "secret db"}}),
    ("secret, relative target under /run/secrets", "    secrets: [{source: db, target: pw}]",
     "secrets: {db: {environment: DB_PASSWORD}}",
     {"/run/secrets/pw": {"secret": "s3cret-pw", "source": "secret db"}}),
    ("secret, absolute target, uid gid mode (YAML 0440 is octal, as in compose)",
     "    secrets: [{source: db, target: /etc/pw, uid: '1005', gid: 1006, mode: 0440}]",
     "secrets: {db: {environment: DB_PASSWORD}}",
     {"/etc/pw": {"secret": "s3cret-pw", "source": "secret db", "uid": "1005", "gid": "1006", "mode": 0o440}}),
    ("mode as a decimal number", "    secrets: [{source: db, mode: 288}]", "secrets: {db: {environment: DB_PASSWORD}}",
     {"/run/secrets/db": {"secret": "s3cret-pw", "source": "secret db", "mode": 0o440}}),
    ("mode as octal text", "    secrets: [{source: db, mode: '0400'}]", "secrets: {db: {environment: DB_PASSWORD}}",
     {"/run/secrets/db": {"secret": "s3cret-pw", "source": "secret db", "mode": 0o400}}),
    ("config from a plain variable is not secret", "    configs: [app]", "configs: {app: {environment: APP_CONF}}",
     {"/app": {"content": "a=1", "source": "config app"}}),
    ("config from a secret-looking variable is secret", "    configs: [app]",
     "configs: {app: {environment: API_TOKEN}}", {"/app": {"secret": "tok-xyz", "source": "config app"}}),
    ("config content, interpolated", "    configs: [{source: inl, target: /etc/app.conf}]",
     "configs: {inl: {content: 'x=${APP_CONF}'}}", {"/etc/app.conf": {"content": "x=a=1", "source": "config inl"}}),
    ("config content from a secret-looking variable is secret", "    configs: [inl]",
     "configs: {inl: {content: 'token=${API_TOKEN}'}}", {"/inl": {"secret": "token=tok-xyz", "source": "config inl"}}),
    ("config content, literal", "    configs: [inl]", "configs: {inl: {content: hello}}",
     {"/inl": {"content": "hello", "source": "config inl"}}),
    ("file-based secret stays a bind (no files entry)", "    secrets: [pw]", "secrets: {pw: {file: pw.txt}}", {}),
    ("a secret no service uses is not written anywhere", "", "secrets: {db: {environment: DB_PASSWORD}}", {}),
]


@pytest.mark.parametrize(("uses", "top", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_forms(uses: str, top: str, want: dict[str, Any]) -> None:
    assert spec_files(uses, top) == want


def test_file_based_secret_is_a_read_only_bind() -> None:
    res, _ = convert("name: cf\nservices:\n  s:\n    image: x\n    secrets: [pw]\nsecrets: {pw: {file: pw.txt}}\n")
    assert res.spec.volumes == ["/srv/cf/pw.txt:/run/secrets/pw:ro"]


ERRORS: list[tuple[str, str, str, int, str, str]] = [
    ("secret with content (compose's schema has none)", "    secrets: [x]", "secrets: {x: {content: hi}}", 6,
     "secrets.x.content", "a secret has no `content`"),
    ("file and environment", "    secrets: [x]", "secrets: {x: {file: pw.txt, environment: DB_PASSWORD}}", 6,
     "secrets.x.environment", "gives both `file` and `environment`"),
    ("environment and content", "    configs: [x]", "configs: {x: {environment: A, content: b}}", 6,
     "configs.x.content", "gives both `environment` and `content`"),
    ("no source at all", "    secrets: [x]", "secrets: {x: {}}", 6, "secrets.x", "give one of `file:`"),
    ("undefined secret", "    secrets: [nope]", "", 5, "services.s.secrets[0]", "undefined secret 'nope'"),
    ("undefined config (long form)", "    configs: [{source: nope}]", "configs: {x: {content: a}}", 5,
     "services.s.configs[0]", "undefined config 'nope'"),
    ("bad mode", "    secrets: [{source: x, mode: rw}]", "secrets: {x: {environment: DB_PASSWORD}}", 5,
     "services.s.secrets[0].mode", "invalid file mode"),
    ("two at one target", "    secrets: [x, {source: y, target: x}]",
     "secrets: {x: {environment: DB_PASSWORD}, y: {environment: DB_PASSWORD}}", 5,
     "services.s.secrets[1]", "mounts two secrets/configs at /run/secrets/x"),
    ("environment not a name", "    secrets: [x]", "secrets: {x: {environment: [A]}}", 6,
     "secrets.x.environment", "must be the name of a variable"),
    ("content not text", "    configs: [x]", "configs: {x: {content: {a: 1}}}", 6,
     "configs.x.content", "must be text"),
]


@pytest.mark.parametrize(("uses", "top", "line", "field", "message"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_file_line_and_field(uses: str, top: str, line: int, field: str, message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        spec_files(uses, top)
    found = [(i.file, i.line, i.field) for i in info.value.issues if message in i.message]
    assert found == [(FILE, line, field)], [str(i) for i in info.value.issues]


DEFERRED: list[tuple[str, str, str, str]] = [
    ("unset variable", "secrets: {x: {environment: NOT_SET_ANYWHERE}}", "secrets.x.environment",
     "variable NOT_SET_ANYWHERE is not set"),
    ("missing file", "secrets: {x: {file: missing.txt}}", "secrets.x.file", "secret file 'cf/missing.txt' does not exist"),
]


@pytest.mark.parametrize(("top", "field", "message"), [d[1:] for d in DEFERRED], ids=[d[0] for d in DEFERRED])
def test_what_compose_fails_on_at_up_is_a_warning_now_and_deferred_to_apply(top: str, field: str, message: str) -> None:
    _res, opts = convert(f"name: cf\nservices:\n  s:\n    image: x\n    secrets: [x]\n{top}\n")
    [issue] = opts.deferred
    assert (issue.file, issue.line, issue.field) == (FILE, 6, field) and issue.message.startswith(message)
    [warning] = [w for w in opts.warnings if message in w]
    assert warning.startswith(f"{FILE}:6: {field}: ") and "reconcile apply` refuses it" in warning


def test_an_unused_unset_secret_is_not_deferred() -> None:
    _res, opts = convert("name: cf\nservices:\n  s: {image: x}\nsecrets: {x: {environment: NOT_SET}}\n")
    assert opts.deferred == [] and opts.warnings == []


def test_file_based_uid_gid_mode_are_ignored_with_a_warning() -> None:
    _res, opts = convert("name: cf\nservices:\n  s:\n    image: x\n    secrets: [{source: pw, mode: 0400}]\n"
                         "secrets: {pw: {file: pw.txt}}\n")
    assert any("secrets.mode" in w and "ignored" in w for w in opts.warnings)


def test_secret_text_is_redacted_in_the_converted_output_and_kept_with_reveal() -> None:
    res, _ = convert("name: cf\nservices:\n  s:\n    image: x\n    secrets: [db]\n    configs: [c]\n"
                     "secrets: {db: {environment: DB_PASSWORD}}\nconfigs: {c: {content: visible}}\n")
    shown = to_native_yaml([res])
    assert "s3cret-pw" not in shown and SECRET_PLACEHOLDER in shown and "visible" in shown
    assert "s3cret-pw" in to_native_yaml([res], reveal_secrets=True)
    spec = res.spec.model_dump(mode="json", exclude_defaults=True)
    assert secret_keys(spec) == ["files./run/secrets/db"]
    assert "s3cret-pw" not in repr(redact_spec(spec))


def test_a_changed_secret_changes_the_spec_hash_and_no_files_keeps_old_hashes() -> None:
    base = {"image": "x"}
    assert spec_hash(ServiceSpec.model_validate(base)) == spec_hash(ServiceSpec.model_validate({**base, "files": {}}))
    a = ServiceSpec.model_validate({**base, "files": {"/run/secrets/a": {"secret": "1"}}})
    b = ServiceSpec.model_validate({**base, "files": {"/run/secrets/a": {"secret": "2"}}})
    assert spec_hash(a) != spec_hash(b)


def test_include_reads_the_variable_from_the_included_env_file() -> None:
    files = {**FILES, "/srv/cf/child/compose.yaml":
             b"services:\n  inc:\n    image: x\n    secrets: [my]\nsecrets:\n  my: {environment: MY_SECRET}\n",
             "/srv/cf/secret.env": b"MY_SECRET='this-is-secret'\n"}
    text = "name: cf\ninclude:\n  - path: child/compose.yaml\n    env_file: [secret.env]\nservices:\n  s: {image: x}\n"
    opts = LoadOptions(environ={}, read_file=lambda p: files[p] if p in files else reader(p))
    res = {r.metadata.name: r for r in load_any([(text.encode(), FILE, DIR)], opts)}
    assert res["cf-inc"].spec.files["/run/secrets/my"].secret == "this-is-secret"
    assert opts.deferred == []


@pytest.mark.parametrize(("value", "mode"), [(0o440, 0o440), ("0440", 0o440), ("0o600", 0o600), ("644", 0o644),
                                             (0, 0)])
def test_parse_mode(value: Any, mode: int) -> None:
    assert parse_mode(value) == mode


@pytest.mark.parametrize("value", ["rw", True, 0o10000, "0999", None])
def test_parse_mode_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_mode(value)


@pytest.mark.parametrize(("data", "message"), [
    ({"content": "a", "secret": "b"}, "exactly one"),
    ({}, "exactly one"),
    ({"content": "a", "uid": "root"}, "numeric"),
])
def test_native_file_mount_validation(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceSpec.model_validate({"image": "x", "files": {"/a": data}})


@pytest.mark.parametrize("target", ["relative", "/dir/", "/a:b"])
def test_native_file_target_must_be_an_absolute_file_path(target: str) -> None:
    with pytest.raises(ValueError):
        ServiceSpec.model_validate({"image": "x", "files": {target: {"content": "a"}}})
