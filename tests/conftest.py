"""Shared pytest fixtures: real Samba servers on private loopback addresses.

Fixtures (session scoped, one smbd each, see tests/sambaserver.py):

    samba_smb1_guest        preset "smb1-guest"        127.21.<slot>.1
    samba_smb1_off          preset "smb1-off"          127.21.<slot>.2
    samba_signing_required  preset "signing-required"  127.21.<slot>.3
    samba_max_smb2_10       preset "max-smb2_10"       127.21.<slot>.4

<slot> is 0 unless another pytest run on this machine holds it.  Each yields
a started SambaServer (.address, .addresses, .netbios_name, .workgroup,
.config, .version, .share_paths, .add_user(), .smbclient(), .log_tail()).

    samba_factory(addresses=None, config="smb1-off", **kw) -> started SambaServer
        function scoped; default addresses come from the slot's scratch range;
        stopped at the end of the test.
    samba_version           "4.17.12-Debian" (skips when smbd is missing; root not needed)
    require_nmap            skips (fails in CI) when nmap is missing

Missing smbd or not root -> skip locally.  With CI=true a missing smbd/nmap
is a failure instead (CI installs them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import nmaprunner
import sambaserver
from sambaserver import SambaServer


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def require_samba() -> None:
    """Skip (or fail in CI) unless smbd & friends are installed and we are root."""
    missing = sambaserver.missing_tools()
    if missing:
        msg = f"real-Samba tests need {', '.join(missing)} (apt install samba smbclient iproute2)"
        if in_ci():
            pytest.fail(f"{msg}; CI=true so this is an error, not a skip", pytrace=False)
        pytest.skip(msg)
    if os.geteuid() != 0:
        pytest.skip("real-Samba tests need root: smbd binds :445/:139 and we add 127.x addresses to lo")


def _start(server: SambaServer) -> SambaServer:
    try:
        return server.start()
    except sambaserver.SambaUnavailable as exc:
        if in_ci():
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def _preset_fixture(preset: str, name: str) -> Callable[[], Iterator[SambaServer]]:
    @pytest.fixture(scope="session", name=name)
    def _fixture(_samba_reaper: None) -> Iterator[SambaServer]:
        require_samba()
        server = SambaServer(sambaserver.fixture_address(preset), config=preset,
                             adopt_addresses=True, wait_reaped=False)
        try:
            yield _start(server)
        finally:
            server.stop()

    _fixture.__doc__ = f"Session smbd with preset {preset!r}: {sambaserver.PRESETS[preset]['description']}."
    return _fixture


@pytest.fixture(scope="session")
def _samba_reaper() -> Iterator[None]:
    """Torn down after every Samba fixture: wait once for init to reap the killed daemons."""
    yield
    sambaserver.wait_for_reaping()


samba_smb1_guest = _preset_fixture("smb1-guest", "samba_smb1_guest")
samba_smb1_off = _preset_fixture("smb1-off", "samba_smb1_off")
samba_signing_required = _preset_fixture("signing-required", "samba_signing_required")
samba_max_smb2_10 = _preset_fixture("max-smb2_10", "samba_max_smb2_10")


@pytest.fixture
def samba_factory(_samba_reaper: None) -> Iterator[Callable[..., SambaServer]]:
    """Start extra SambaServers inside a test; all are stopped afterwards.

    ``samba_factory(addresses=None, config="smb1-off", **SambaServer kwargs)``;
    without addresses the next free scratch address of our slot is used.
    """
    require_samba()
    servers: list[SambaServer] = []
    scratch = iter(sambaserver.scratch_addresses(sambaserver.SCRATCH_HOST_LAST - sambaserver.SCRATCH_HOST_FIRST + 1))

    def make(addresses: str | list[str] | None = None, config: str = "smb1-off", **kwargs: object) -> SambaServer:
        kwargs.setdefault("wait_reaped", False)
        if addresses is None:  # our slot's scratch range: adopt leftovers of a killed run
            kwargs.setdefault("adopt_addresses", True)
        server = SambaServer(addresses if addresses is not None else next(scratch), config,
                             **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return _start(server)

    try:
        yield make
    finally:
        errors = []
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def samba_version() -> str:
    """``smbd --version`` minus "Version " (e.g. "4.17.12-Debian"); needs smbd, not root."""
    version = sambaserver.samba_version()
    if version is None:
        msg = "smbd not installed or `smbd --version` failed (apt install samba)"
        if in_ci():
            pytest.fail(f"{msg}; CI=true so this is an error", pytrace=False)
        pytest.skip(msg)
    return version


@pytest.fixture(scope="session")
def require_nmap() -> str:
    """nmap's version string; skip locally (fail in CI) when nmap is missing."""
    if not nmaprunner.nmap_available():
        if in_ci():
            pytest.fail("nmap is not installed; CI=true so this is an error", pytrace=False)
        pytest.skip("nmap not installed (apt install nmap)")
    return nmaprunner.nmap_version() or "unknown"


# Hypothesis explores new random inputs on every local run; in CI it replays
# a fixed derandomized set, so a landing never hangs on a lucky draw (what a
# local run finds becomes a regression test of its own).
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
    if in_ci():
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


@pytest.fixture(scope="session", autouse=True)
def _private_store(tmp_path_factory) -> Iterator[None]:
    """Scans run by the tests record into a throw-away database, never the
    user's own store (the CLI records every scan by default)."""
    old = os.environ.get("SMBSENTRY_DB")
    os.environ["SMBSENTRY_DB"] = str(tmp_path_factory.mktemp("store") / "tests.db")
    yield
    if old is None:
        os.environ.pop("SMBSENTRY_DB", None)
    else:
        os.environ["SMBSENTRY_DB"] = old
