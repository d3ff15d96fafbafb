"""Stack settings: every bad key is named with its path and why, and nothing is registered."""

from __future__ import annotations

import json

import pulumi
import pytest

from rootwatch.core.errors import ConfigError
from rootwatch.program import mockrun, settings

ROUTES = json.dumps({lvl: [{"protocol": "email", "endpoint": "sec@example.com"}] for lvl in ("low", "medium", "high", "critical")})
BASE = {"rootwatch:routes": ROUTES}


def problems(config: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        settings.load({**BASE, **config})
    return exc.value.problems


BAD = [
    ("rootwatch:alarm", {"periodSeconds": 45}, "rootwatch:alarm.periodSeconds: must be a multiple of 60"),
    # 10 and 30 s make high-resolution alarms on a one-minute metric (INSUFFICIENT_DATA).
    ("rootwatch:alarm", {"periodSeconds": 10}, "rootwatch:alarm.periodSeconds: must be a multiple of 60"),
    ("rootwatch:alarm", {"periodSeconds": 30}, "rootwatch:alarm.periodSeconds: must be a multiple of 60"),
    ("rootwatch:alarm", {"periodSeconds": 600}, "rootwatch:alarm.periodSeconds: must be at most 300 seconds"),
    ("rootwatch:accounts", {"includeAccounts": ["12345"]}, "rootwatch:accounts.includeAccounts[0]: '12345' is not a 12-digit AWS account id"),
    ("rootwatch:accounts", {"excludeOus": ["production"]}, "rootwatch:accounts.excludeOus[0]: 'production' is not an organizational unit"),
    ("rootwatch:accounts", {"source": "list"}, "rootwatch:accounts: source is 'list' but accounts.list is empty"),
    ("rootwatch:homeRegion", "us-middle-9x", "rootwatch:homeRegion: 'us-middle-9x' is not an AWS region name"),
    ("rootwatch:realtime", {"regions": ["eu-west-1", "moon-1"]}, "rootwatch:realtime.regions[1]: 'moon-1' is not an AWS region name"),
    ("rootwatch:access", {"roleName": "bad role/name"}, "rootwatch:access.roleName: 'bad role/name' is not a valid IAM role name"),
    ("rootwatch:trail", {"retentionDays": 100}, "rootwatch:trail.retentionDays: 100 is not a retention CloudWatch Logs accepts"),
    ("rootwatch:trail", {"mode": "existing"}, "rootwatch:trail: mode 'existing' needs trail.logGroupName"),
    ("rootwatch:routes", {"critical": [{"protocol": "email", "endpoint": "not-an-address"}]}, "rootwatch:routes.critical[0]: endpoint is not a valid email endpoint"),
    ("rootwatch:routes", {"critical": [{"protocol": "https", "endpoint": "http://hooks.example.com/x"}]}, "rootwatch:routes.critical[0]: endpoint is not a valid https endpoint"),
    ("rootwatch:routes", {"critical": [{"protocol": "pager", "endpoint": "x"}]}, "rootwatch:routes.critical[0].protocol: Input should be 'email', 'https', 'sqs' or 'lambda'"),
    ("rootwatch:runbookUrl", "http://wiki.example.com/rb", "rootwatch:runbookUrl: 'http://wiki.example.com/rb' is not an https:// URL"),
    ("rootwatch:alarm", {"periodSecond": 60}, "rootwatch:alarm.periodSecond: unknown key (did you mean 'periodSeconds'?)"),
    ("rootwatch:homeRegoin", "us-east-1", "rootwatch:homeRegoin: unknown key (did you mean 'homeRegion'?)"),
    ("rootwatch:severity", {"default": "urgent"}, "rootwatch:severity.default: Input should be 'low', 'medium', 'high' or 'critical'"),
]


@pytest.mark.parametrize("key,value,expected", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_each_bad_value_names_its_key_and_why(key: str, value: object, expected: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)
    found = problems({key: raw})
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_secret_endpoints_are_never_echoed_in_errors() -> None:
    (msg,) = problems({"rootwatch:routes": json.dumps({**json.loads(ROUTES), "high": [{"protocol": "https", "endpoint": "http://hooks.example.com/T0K3N"}]})})
    assert "T0K3N" not in msg


def test_every_bad_key_is_listed_at_once() -> None:
    found = problems({"rootwatch:alarm": json.dumps({"periodSeconds": 45}), "rootwatch:homeRegion": "nowhere", "rootwatch:colour": "blue"})
    assert len(found) == 3
    assert {f.split(":")[1].split(" ")[0] for f in found} == {"alarm.periodSeconds", "homeRegion", "colour"}


def test_a_reachable_level_without_subscribers_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        settings.load({"rootwatch:routes": json.dumps({"high": [{"protocol": "email", "endpoint": "a@example.com"}]})})
    # Default baseline is high; real-time can escalate to critical, which has no route.
    assert exc.value.problems == ["rootwatch: routes: level(s) critical can be reached but have no subscription"]


def test_environment_overrides_stack_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTWATCH_ALARM__PERIODSECONDS", "300")
    monkeypatch.setenv("ROOTWATCH_HOME_REGION", "eu-west-1")
    s = settings.load({**BASE, "rootwatch:alarm": json.dumps({"periodSeconds": 60, "namespace": "Sec"}), "rootwatch:homeRegion": "us-east-1"})
    assert (s.alarm.period_seconds, s.alarm.namespace, s.home_region) == (300, "Sec", "eu-west-1")


def test_environment_overrides_are_validated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTWATCH_ALARM__PERIODSECONDS", "45")
    (found,) = problems({})
    assert found.startswith("rootwatch:alarm.periodSeconds: must be a multiple of 60")


def test_unprefixed_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEREGION", "eu-west-1")
    monkeypatch.setenv("ALARM", json.dumps({"periodSeconds": 45}))
    s = settings.load(BASE)
    assert (s.home_region, s.alarm.period_seconds) == ("us-east-1", 60)


def test_break_glass_windows_need_two_approvers_and_a_bounded_length() -> None:
    window = {"ticket": "SEC-1", "accounts": ["222222222201"], "approvers": ["ann", "ANN "], "start": "2026-11-24T10:00:00Z",
              "end": "2026-11-24T12:00:00Z", "reason": "restore MFA"}
    (msg,) = problems({"rootwatch:breakGlass": json.dumps({"windows": [window]})})
    assert msg == "rootwatch:breakGlass.windows[0]: a break-glass window needs at least two distinct approvers"
    long = {**window, "approvers": ["ann", "bob"], "end": "2026-11-25T10:00:00Z"}
    (msg,) = problems({"rootwatch:breakGlass": json.dumps({"windows": [long]})})
    assert msg == "rootwatch:breakGlass: windows[0] (SEC-1) is longer than breakGlass.maxHours (8 h)"


@pytest.mark.parametrize("key,value,expected", BAD[:3] + BAD[14:15], ids=["period", "period-max", "account", "typo"])
def test_the_program_registers_nothing_on_bad_config(key: str, value: object, expected: str) -> None:
    raw = value if isinstance(value, str) else json.dumps(value)
    r = mockrun.run("example", extra_config={key: raw}, check=False)
    assert isinstance(r.error, pulumi.RunError)
    assert expected in str(r.error)
    assert r.resources == []
