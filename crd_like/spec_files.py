"""Files the controller writes itself and bind-mounts read-only into the container: what
compose's ``secrets: {NAME: {environment: VAR}}`` and ``configs: {NAME: {environment: VAR}
| {content: TEXT}}`` become (the content is captured when the file is loaded, as compose
does). Mixed into ``ServiceSpec`` as ``files``; the default (none) keeps existing spec
hashes unchanged.

``files: {TARGET: {content: TEXT} | {secret: TEXT}, mode, uid, gid, source}``: ``secret``
holds content that is never printed (``crd_like.secrets.redact_spec``), ``content`` plain
text. Where the controller writes them is ``controller.files``. No I/O; must not import
``models``, ``store`` or ``controller``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from crd_like.spec_base import _Frozen

MAX_FILE_CONTENT = 1024 * 1024  # bytes of one inline file (compose has no limit; a store row should stay small)
_TARGET = r"^/[^\x00:]*[^/\x00:]$"
_ID = re.compile(r"^[0-9]{1,10}$")


def parse_mode(v: Any) -> int:
    """A file mode: an int, or octal text (``"0440"``, ``"0o440"``, ``"440"`` is octal too
    when written as text: modes are octal by convention). Raises ValueError."""
    if isinstance(v, bool):
        raise ValueError("expected a file mode such as 0440")
    if isinstance(v, int):
        mode = v
    elif isinstance(v, str) and re.fullmatch(r"(0o?)?[0-7]{1,4}", v.strip()):
        text = v.strip()
        mode = int(text.removeprefix("0o"), 8)
    else:
        raise ValueError(f"invalid file mode {v!r}: expected an octal mode such as 0440")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"invalid file mode {oct(mode) if isinstance(mode, int) else mode}: expected 0 to 07777")
    return mode


def _id(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, str)) or not _ID.match(str(v).strip()):
        raise ValueError(f"expected a numeric user or group id, got {v!r}")
    return str(v).strip()


Mode = Annotated[int, BeforeValidator(parse_mode)]
NumericId = Annotated[str, BeforeValidator(_id)]


class FileMount(_Frozen):
    """One file written by the controller (root-owned, in a directory only root can enter)
    and mounted read-only at its target."""

    content: str | None = Field(default=None, max_length=MAX_FILE_CONTENT, description="The file's text.")
    secret: str | None = Field(default=None, max_length=MAX_FILE_CONTENT,
                               description="The file's text, kept in the store and never printed (a secret).")
    mode: Mode | None = Field(default=None, description="The file's mode (octal, e.g. 0440); default 0444, "
                              "as compose gives secrets and configs it creates.")
    uid: NumericId | None = Field(default=None, description="Numeric owner (default 0).")
    gid: NumericId | None = Field(default=None, description="Numeric group (default 0).")
    source: str = Field(default="", description="What it comes from, for messages: 'secret NAME' or 'config NAME'.")

    @model_validator(mode="after")
    def _one(self) -> FileMount:
        if (self.content is None) == (self.secret is None):
            raise ValueError("a file needs exactly one of 'content' or 'secret'")
        return self

    @property
    def text(self) -> str:
        return self.secret if self.secret is not None else self.content or ""


Target = Annotated[str, Field(pattern=_TARGET)]


class FileFields(BaseModel):
    """Mixed into ``ServiceSpec``."""

    # a mixin, never validated on its own: its schema is built only inside the models
    # that use it (building it here as well cost several ms per mixin at every start)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    files: dict[Target, FileMount] = Field(
        default_factory=dict,
        description="Files the controller writes and mounts read-only: {/run/secrets/db: {secret: TEXT}, "
                    "/app.conf: {content: TEXT, mode: 0440}}.")
