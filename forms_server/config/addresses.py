"""Where the server is reached: the one public address every emailed link starts with, the
hosts it answers to, where the handbook is published, and that the handbook's and the forms'
links to each other agree with them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings

from forms_server.config.group import SITE_URL_VARIABLE, SettingsError

LOCAL_HOSTS = "127.0.0.1,localhost"


def allowed_hosts_from(config: Config, environment: str, public_url: str) -> tuple[str, ...]:
    """The hosts this server answers to. In production, unless FORMS_ALLOWED_HOSTS names more,
    only the public address's host; never a list that leaves it out."""
    configured = config("FORMS_ALLOWED_HOSTS", default="")
    public_host = urlsplit(public_url).hostname or ""
    default = public_host if environment == "production" else LOCAL_HOSTS
    hosts = tuple(host.strip() for host in CommaSeparatedStrings(configured or default))
    if any(not host or "*" in host for host in hosts):
        raise SettingsError(
            "FORMS_ALLOWED_HOSTS must name each host exactly, without '*' or empty names: a "
            "wildcard lets any Host header into the links the server makes."
        )
    if environment == "production" and public_host and public_host not in hosts:
        raise SettingsError(
            f"FORMS_PUBLIC_URL's host {public_host} is not in FORMS_ALLOWED_HOSTS "
            f"({', '.join(hosts)}): add it, or leave FORMS_ALLOWED_HOSTS unset to answer to "
            "that host alone."
        )
    return hosts


PUBLIC_URL_EXAMPLE = "https://forms.your-group.org.uk"


def public_url_from(config: Config, environment: str, port: int) -> str:
    """Where members and recipients reach this server: every link in an email starts here. In
    production it must be an address others can reach, over HTTPS, with no path."""
    given = config("FORMS_PUBLIC_URL", default="").strip()
    configured = given.rstrip("/") if given.count("/") > 2 else given
    if environment != "production":
        if configured and not configured.startswith(("https://", "http://")):
            raise SettingsError("FORMS_PUBLIC_URL must start with https:// (or http://).")
        return configured or f"http://127.0.0.1:{port}"
    if not configured:
        raise SettingsError(
            "FORMS_PUBLIC_URL is not set. In production, set it to the address members use to "
            f"reach the forms, for example FORMS_PUBLIC_URL={PUBLIC_URL_EXAMPLE}: every link "
            "in an email starts with it."
        )
    if not configured.startswith("https://"):
        raise SettingsError(
            f"FORMS_PUBLIC_URL must start with https:// in production (not {configured!r}): "
            "links in emails open answers and must not travel in the clear."
        )
    parts = urlsplit(configured)
    host = parts.hostname or ""
    if not host:
        raise SettingsError(f"FORMS_PUBLIC_URL has no host, for example {PUBLIC_URL_EXAMPLE}.")
    if parts.path or parts.query or parts.fragment:
        raise SettingsError(
            f"FORMS_PUBLIC_URL takes a host and no path (the forms live at /forms/), for "
            f"example {PUBLIC_URL_EXAMPLE}, not {configured!r}."
        )
    if is_ip_address(host):
        raise SettingsError(
            f"FORMS_PUBLIC_URL is an IP address ({host}): members' links need the group's "
            f"host name, for example {PUBLIC_URL_EXAMPLE}."
        )
    if host == "localhost" or host.endswith((".localhost", ".localdomain")):
        raise SettingsError(
            f"FORMS_PUBLIC_URL is localhost ({host}): nobody else can open a link to it. Set "
            f"the group's host name, for example {PUBLIC_URL_EXAMPLE}."
        )
    return configured


def site_url_from(config: Config, public_url: str) -> str:
    """FORMS_SITE_URL (from .env as well: the server passes it to the build), else the public
    address: one address unless the handbook is published somewhere else."""
    configured = config(SITE_URL_VARIABLE, default="").strip()
    if not configured:
        return public_url.rstrip("/") + "/"
    parts = urlsplit(configured)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError(
            "FORMS_SITE_URL must be a full address where the handbook is published, like "
            f"https://handbook.your-group.org.uk/, not {configured!r} (or unset: then "
            "FORMS_PUBLIC_URL)."
        )
    return configured if configured.endswith("/") else configured + "/"


def forms_url_reaches(group: Mapping[str, Any], public_url: str, handbook_config: Path) -> None:
    """The handbook's links to the forms (extra.group.forms_url) go to this server: a path on
    it, or an address under FORMS_PUBLIC_URL (for a handbook published on a static host)."""
    forms_url = str(group.get("forms_url") or "/forms/")
    if forms_url.startswith("/") and not forms_url.startswith("//"):
        return
    if not forms_url.startswith(public_url + "/"):
        raise SettingsError(
            f"{handbook_config}: extra.group.forms_url is {forms_url!r}, which is not under "
            f"FORMS_PUBLIC_URL ({public_url}): the handbook's links to the forms would go "
            f"elsewhere. Set it to /forms/, or to {public_url}/forms/ for a handbook published "
            "on another host."
        )


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def handbook_url_reaches(handbook_url: str, site_url: str) -> None:
    """The forms' links to the handbook (FORMS_HANDBOOK_URL) go where it is published."""
    if site_url and "://" in handbook_url and not handbook_url.startswith(site_url.rstrip("/")):
        raise SettingsError(
            f"FORMS_HANDBOOK_URL ({handbook_url}) is not where the handbook is published "
            f"(FORMS_SITE_URL, {site_url}): the forms' links to the handbook would go elsewhere. "
            "Leave it unset when this server serves the handbook, or make the two the same."
        )
