"""The ``[ha]`` section: defaults, a bad lease named by its key, the derived identity."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.ha.replica import identity

ACCOUNT = {"name": "main", "token": "t"}


def test_it_defaults_to_a_30s_lease_and_a_derived_replica_name() -> None:
    config = parse_config({"accounts": [ACCOUNT]})
    assert config.ha.lease == timedelta(seconds=30)
    assert identity(config.ha.replica).name == f"{socket.gethostname()}:{os.getpid()}"


def test_a_configured_replica_name_is_used_as_is() -> None:
    config = parse_config({"accounts": [ACCOUNT], "ha": {"replica": "monitor-a"}})
    assert identity(config.ha.replica).name == "monitor-a"


@pytest.mark.parametrize(("ha", "key", "reason"), [
    ({"lease": "1s"}, "ha.lease", "must be at least 2s"),
    ({"lease": "soon"}, "ha.lease", "is not a duration"),
    ({"leases": "30s"}, "ha.leases", "unknown key"),
])
def test_a_bad_ha_setting_is_refused_naming_the_key(ha: dict[str, str], key: str,
                                                     reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": [ACCOUNT], "ha": ha})
    assert caught.value.key == key
    assert reason in caught.value.reason
