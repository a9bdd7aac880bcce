"""Printable labels of URLs: what a message, a log line or a stats report may show of a camera or an endpoint.

A label is built from the URL's scheme, host, port and path only, so nothing secret can slip through by being
left in: `user:pass@` becomes `***@`, the query string (where cameras and webhooks often carry a token) is left
out, and credential-like parameters in the path (`/user=admin_password=…_channel=1`, as some cameras take them)
are masked. The user information ends at the *last* `@` before the path, as FFmpeg reads it, so a password
holding an `@` is masked whole. Webhook endpoints are shown as their origin only (`origin`): Slack and
Discord keep their tokens in the path.

`label` names one URL; `scrub` rewrites every URL inside a free text (an FFmpeg error, an OS message);
`hide_secrets` rewrites only those that carry a secret, even folded into a path (the CLI's last guard);
`expand_env` fills `${NAME}` in from the environment, so secrets need not be on a command line; `check_url` is
the one validator of camera, broker and webhook URLs, whose errors never quote a secret.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from facetrack.errors import FacetrackError

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_KEYS = ("user", "username", "usr", "login", "pass", "password", "passwd", "pwd", "token", "key", "apikey",
                "auth", "secret", "signature", "sig")
# `key=value` inside a path, the value ending where the next `name=` (after `_`, `&`, `;`), a `/` or the end starts.
_PATH_SECRET = re.compile(r"(?i)(?<![a-z0-9])(?P<key>" + "|".join(_SECRET_KEYS) + r")=(?P<value>.*?)"
                          r"(?=[_&;,][a-z]+=|[&;/]|$)")
MASK = "***"


def _parts(url: str) -> tuple[str, bool, str, str, str] | None:
    """(scheme, had user information, host, port, path) of a URL; None for anything without `scheme://`."""
    match = _SCHEME.match(url.strip())
    if match is None:
        return None
    scheme, rest = match["scheme"].lower(), match["rest"]
    # The user information ends at the last '@' before the query, as FFmpeg splits it (a password may hold an
    # '@'); an '@' further on (a password holding a '/') moves it there too: a label errs on the side of hiding.
    main = re.split(r"[?#]", rest, maxsplit=1)[0]
    _, at, after = main.rpartition("@")
    hostport, slash, path = after.partition("/")
    path = slash + path
    if hostport.startswith("["):  # [IPv6]:port
        host, _, after = hostport.partition("]")
        host += "]"
        port = after[1:] if after.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not port.isdigit():
        port = ""  # not a port: whatever it is (a password without its '@'?), it is not shown
    return scheme, bool(at), host, port, path


def mask_path(path: str) -> str:
    """`path` with the values of credential-like parameters (`password=…`, `token=…`) replaced by `***`."""
    return _PATH_SECRET.sub(lambda m: f"{m['key']}={MASK}", path)


def label(url: str) -> str:
    """How a URL may be printed: scheme, `***@` for any user information, host, port and masked path; no query.

    Anything that is not a URL (a file path, a device such as /dev/video0) is returned as it is.
    """
    shown = _printable(url, whole=True)
    return url if shown is None else shown


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: all an endpoint whose path may hold a token is shown as."""
    shown = _printable(url, whole=False)
    return MASK if shown is None else shown


def _printable(url: str, whole: bool) -> str | None:
    """`scheme://host[:port]`, with `***@` for any user information and the masked path when `whole`; None for
    anything without `scheme://`."""
    parts = _parts(url)
    if parts is None:
        return None
    scheme, userinfo, host, port, path = parts
    user = MASK + "@" if whole and userinfo else ""
    return f"{scheme}://{user}{host}{':' + port if port else ''}{mask_path(path) if whole else ''}"


def parse_problem(error: ValueError) -> str:
    """What `urllib.parse` found wrong with a URL, without quoting the URL's text (a "port" may be a password)."""
    text = str(error)
    return "its port is not a number from 0 to 65535" if "port" in text.lower() else scrub(text)


def scrub(text: str) -> str:
    """`text` with every URL in it replaced by its label (for error texts that quote the URL they failed on)."""
    return _IN_TEXT.sub(lambda m: label(m[0]), text)


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that names a supported scheme and a host, split into what a client needs."""

    url: str
    scheme: str  # lower case
    host: str
    port: int | None  # the URL's, else the scheme's default (None when it has none)
    username: str | None  # percent-decoded
    password: str | None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_url(url: str, schemes: Mapping[str, int | None], form: str, what: str = "",
              shown: Callable[[str], str] = label, spaces: bool = True) -> CheckedUrl:
    """Check that `url` is `scheme://host[:port]…` with one of `schemes` (→ default port); else a `FacetrackError`.

    `form` is how a right URL looks (in the message), `what` names the setting ("MQTT", "webhook"; "" for a
    camera), `shown` how the URL may be printed (`label`, or `origin` where the path holds a token); `spaces`
    False refuses a space anywhere (an HTTP client refuses it in the path).
    """
    kind = f"{what} URL" if what else "URL"
    if _CONTROL.search(url):
        # Not quoted at all: a line break in a message would make it two.
        raise FacetrackError(f"malformed {kind}: it holds a control character (a tab, a line break?)")
    text = shown(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0–65535
    except ValueError as exc:
        raise FacetrackError(f"malformed {kind} {text}: {parse_problem(exc)} (expected {form})") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise FacetrackError(f"{kind} {text} must be {form}: unsupported URL scheme {scheme}://")
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in host) or port == 0:
        raise FacetrackError(f"malformed {kind} {text}: it names no host (expected {form})")
    if not spaces and " " in url:
        raise FacetrackError(f"malformed {kind} {text}: it holds a space (write it as %20)")
    return CheckedUrl(url, scheme, host, port or schemes[scheme],
                      urllib.parse.unquote(parts.username) if parts.username else None,
                      urllib.parse.unquote(parts.password) if parts.password else None)


# A URL as a message may quote it: whole, or as a path makes of it (`Path("rtsp://u:p@h/x")` is rtsp:/u:p@h/x).
_QUOTED = re.compile(r"(?<![\w.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://?(?P<rest>[^\s'\"<>]+)")


def _carries_secret(url: str) -> bool:
    """A password in the user information, a query, a fragment or a credential-like path parameter."""
    match = _SCHEME.match(url)
    if match is None:
        return False
    main, *after = re.split(r"[?#]", match["rest"], maxsplit=1)
    userinfo, at, _ = main.rpartition("@")
    return any(after) or (bool(at) and ":" in userinfo) or mask_path(main) != main


def hide_secrets(text: str) -> str:
    """`text` with every URL that carries a secret replaced by its label, also a URL a path has folded
    (`rtsp:/u:p@h/x`, when a URL was given where a file was expected); URLs without one are left as they are.

    The last guard before a message is printed: a mistake such as a camera URL passed to `annotate` or as
    `--events` is quoted back by messages that expect a file name.
    """

    def hide(match: re.Match[str]) -> str:
        rest = match["rest"].rstrip(":;,.)")  # the sentence goes on after the URL
        url = f"{match['scheme']}://{rest}"
        return label(url) + match["rest"][len(rest):] if _carries_secret(url) else match[0]

    return _QUOTED.sub(hide, text)


_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, where: str) -> str:
    """`text` with every `${NAME}` replaced by the environment variable NAME (which must be set and not empty).

    Camera, broker and webhook URLs carry passwords and tokens; on a command line every local user reads them
    through `ps`, so they can be left in the environment instead. `where` names the setting in the error.
    """

    def value(match: re.Match[str]) -> str:
        name = match["name"]
        found = os.environ.get(name)
        if not found:
            state = "is empty" if found == "" else "is not set"
            raise FacetrackError(f"{where}: environment variable {name} {state} (export {name}=...)")
        return found

    return _ENV_REFERENCE.sub(value, text)
