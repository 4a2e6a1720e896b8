"""Push events: a merge shows up in seconds instead of at the next scheduled run.

* ``POST /events/github``: GitHub's webhook (``X-GitHub-Event: push``; ``ping`` is
  answered, other events are ignored), JSON or form-encoded.
* ``POST /events/git``: any git server, ``{"repository": "<url>", "ref": "refs/heads/main"}``.

Both need ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`` made with
``catalog.events.secret`` (accepted for every provider) or a provider's own
``webhookSecret`` (accepted for that provider), compared in constant time; without any
secret configured, events are refused. A verified event makes the providers that read
the named repository check just that repository now (in the background), forgets the
git reader's cached head of it, and makes every entity read from it due, so locations
and placeholders outside providers follow too. Answers 202 with what it refreshed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from flask import Response, request
from marshmallow import Schema, fields

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response
from app.errors import AuthenticationError, InputError, NotAllowedError
from app.reading.git import (
    GitReader,
    check_ref,
    check_repository_url,
    refresh_key,
    repository_key,
)

blp = Blueprint(
    "events", __name__, url_prefix="/api/catalog/events", description="Push events from git"
)

SIGNATURE_HEADER = "X-Hub-Signature-256"


class EventAccepted(Schema):
    repositories = fields.List(fields.String(), metadata={"description": "Repository URLs"})
    providers = fields.List(
        fields.String(), metadata={"description": "Providers that check them now"}
    )
    ignored = fields.String(metadata={"description": "Why nothing was done, if so"})


def _secrets() -> list[tuple[str, set[str] | None]]:
    """(secret, the provider names it speaks for; None: all of them)."""
    current = catalog()
    found: list[tuple[str, set[str] | None]] = []
    general = current.config.events_secret
    if general:
        found.append((general, None))
    for provider in current.engine.providers:
        secret = getattr(getattr(provider, "config", None), "webhook_secret", None)
        if secret:
            found.append((secret, {provider.get_provider_name()}))
    return found


def _verified_scope() -> set[str] | None:
    """Check the body's signature; return the providers the matching secret speaks for."""
    secrets = _secrets()
    if not secrets:
        raise NotAllowedError(
            "Push events are refused: no webhook secret is configured (catalog.events.secret, "
            "or webhookSecret of a provider)"
        )
    header = request.headers.get(SIGNATURE_HEADER, "")
    if not header:
        raise AuthenticationError(f"Missing {SIGNATURE_HEADER} header")
    scheme, _, given = header.partition("=")
    if scheme != "sha256" or not given:
        raise AuthenticationError(f"{SIGNATURE_HEADER} must look like sha256=<hex digest>")
    body = request.get_data(cache=True)
    scope: set[str] = set()
    matched = False
    for secret, providers in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given.strip().lower()):
            if providers is None:
                return None
            scope |= providers
            matched = True
    if not matched:
        raise AuthenticationError(f"The {SIGNATURE_HEADER} signature does not match the body")
    return scope


def _payload() -> dict[str, Any]:
    body = request.get_data(cache=True)
    try:
        if request.mimetype == "application/x-www-form-urlencoded":
            values = parse_qs(body.decode("utf-8"), strict_parsing=True).get("payload") or []
            data = json.loads(values[0]) if values else None
        else:
            data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"Malformed event body: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError("The event body must be a JSON object")
    return data


def _refresh(urls: list[str], scope: set[str] | None, organization: str | None) -> Response:
    current = catalog()
    keys = {repository_key(url) for url in urls}
    refreshed: list[str] = []
    for provider in current.engine.providers:
        name = provider.get_provider_name()
        if not hasattr(provider, "refresh_repositories") or (
            scope is not None and name not in scope
        ):
            continue
        owned = bool(provider.owns(urls))
        # A new repository of a discovered organisation: its next listing finds it.
        github = getattr(provider, "github_config", None)
        if not owned and github is not None and organization is not None:
            owned = github.organization.lower() == organization.lower()
        if owned:
            provider.refresh_repositories(urls)
            refreshed.append(name)
    git = current.readers.get("git")
    if isinstance(git, GitReader):
        for url in urls:
            git.invalidate(url)
    # Locations and placeholders outside providers that read these repositories.
    current.engine.refresh_keys(sorted({refresh_key(url) for url in urls}))
    body = {"repositories": sorted(keys), "providers": refreshed}
    return json_response(jsonutil.dumps(body), 202)


@blp.route("/github", methods=["POST"])
@blp.response(202, EventAccepted)
@blp.alt_response(200, description="ping, or an event other than push (ignored)")
@blp.alt_response(401, description="Missing or wrong X-Hub-Signature-256")
@blp.alt_response(403, description="No webhook secret configured")
def github_event() -> Response:
    """A GitHub webhook delivery; push events refresh the pushed repository."""
    scope = _verified_scope()
    event = request.headers.get("X-GitHub-Event", "")
    if event != "push":
        reason = "pong" if event == "ping" else f"event '{event}' is not handled"
        return json_response(jsonutil.dumps({"ignored": reason}), 200)
    payload = _payload()
    repository = payload.get("repository")
    if not isinstance(repository, dict):
        raise InputError("A push event names its repository in 'repository'")
    urls = []
    for field in ("clone_url", "git_url", "html_url", "url"):
        value = repository.get(field)
        if isinstance(value, str):
            try:
                urls.append(check_repository_url(value))
            except InputError:
                continue
    if not urls:
        raise InputError("The push event's repository has no usable URL")
    owner = repository.get("owner")
    login = (owner.get("login") or owner.get("name")) if isinstance(owner, dict) else None
    return _refresh(urls, scope, login if isinstance(login, str) else None)


@blp.route("/git", methods=["POST"])
@blp.response(202, EventAccepted)
@blp.alt_response(400, description="No repository URL, or one that is refused")
@blp.alt_response(401, description="Missing or wrong X-Hub-Signature-256")
@blp.alt_response(403, description="No webhook secret configured")
def git_event() -> Response:
    """Any git server: ``{"repository": url, "ref": ...}`` refreshes that repository."""
    scope = _verified_scope()
    payload = _payload()
    url = check_repository_url(payload.get("repository"))
    if payload.get("ref") is not None:
        check_ref(payload["ref"])
    return _refresh([url], scope, None)
