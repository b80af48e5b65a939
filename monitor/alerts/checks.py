"""The config checks that need the alerts layer (``config.ConfigChecks``): Apprise's view
of a channel URL and Jinja2's of a template, both as the daemon will use them."""

from __future__ import annotations

from monitor.alerts.notifier import is_valid_url
from monitor.alerts.templates import check_template


class AlertChecks:
    def channel_url(self, url: str) -> bool:
        return is_valid_url(url)

    def template(self, source: str) -> None:
        check_template(source)


ALERT_CHECKS = AlertChecks()
