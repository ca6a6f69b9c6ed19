"""What a DigitalOcean stack's alerts are, as data (issue 22): the monitor alerts on the droplets,
the load balancer and the database cluster, and the uptime check's alerts on the public URL.
`stack/digitalocean.py` declares them; docs/alerts.md lists them with their thresholds and cost.

The `type` strings are the ones pulumi-digitalocean 4.84.1 documents for
`digitalocean.MonitorAlert` (v1/insights/droplet/*, v1/insights/lbaas/*, v1/dbaas/alerts/*);
the windows the API takes are 5m, 10m, 30m and 1h, the uptime periods 2m to 1h.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.settings import Settings

SSL_EXPIRY_DAYS = 14  # the uptime check warns this many days before the certificate ends
# Where the uptime check probes from (us_east, us_west, eu_west, se_asia): the region's own
# continent and one more, so a down_global alert means the site is down from two places.
UPTIME_REGIONS = {"ams": ("eu_west", "us_east"), "fra": ("eu_west", "us_east"),
                  "lon": ("eu_west", "us_east"), "nyc": ("us_east", "eu_west"),
                  "tor": ("us_east", "us_west"), "sfo": ("us_west", "us_east"),
                  "atl": ("us_east", "us_west"), "sgp": ("se_asia", "us_west"),
                  "blr": ("se_asia", "eu_west"), "syd": ("se_asia", "us_west")}


@dataclass(frozen=True)
class MonitorAlert:
    """One digitalocean.MonitorAlert: `on` is "droplets" (the web tag), "balancer" or "db"."""

    part: str  # its resource name's suffix: <site>-alert-<part>
    on: str
    type: str
    compare: str  # GreaterThan | LessThan
    value: float
    window: str
    description: str


@dataclass(frozen=True)
class UptimeAlert:
    part: str  # <site>-uptime-<part>
    type: str  # down_global | latency | ssl_expiry
    comparison: str | None
    threshold: int | None
    period: str


def heard(settings: Settings) -> bool:
    """Alerts are on and reach someone: DigitalOcean takes no alert policy without an email
    address or a Slack channel, so a stack with neither declares none."""
    a = settings.alerts
    return a is not None and a.enabled and bool(a.email or a.webhook is not None)


def monitor_alerts(settings: Settings) -> list[MonitorAlert]:
    """Every monitor alert the stack declares (none when alerts are off or reach nobody)."""
    if not heard(settings):
        return []
    a = settings.alerts
    assert a is not None
    out = [
        MonitorAlert("droplet-cpu", "droplets", "v1/insights/droplet/cpu", "GreaterThan",
                     a.cpu_percent, "10m", f"a web droplet's CPU is above {a.cpu_percent}% for 10 minutes"),
        MonitorAlert("droplet-memory", "droplets", "v1/insights/droplet/memory_utilization_percent",
                     "GreaterThan", a.memory_percent, "10m",
                     f"a web droplet uses more than {a.memory_percent}% of its memory for 10 minutes"),
        MonitorAlert("droplet-disk", "droplets", "v1/insights/droplet/disk_utilization_percent",
                     "GreaterThan", a.disk_percent, "5m",
                     f"a web droplet's disk is more than {a.disk_percent}% full"),
    ]
    if settings.load_balancer:
        out += [
            MonitorAlert("lb-5xx-rate", "balancer",
                         "v1/insights/lbaas/increase_in_http_error_rate_percentage_5xx", "GreaterThan",
                         a.error_rate_percent, "5m",
                         f"more than {a.error_rate_percent}% of the load balancer's answers are 5xx"),
            MonitorAlert("lb-response-time-p95", "balancer",
                         "v1/insights/lbaas/high_http_request_response_time_95p", "GreaterThan",
                         a.response_time_ms, "5m",
                         f"the load balancer's p95 response time is above {a.response_time_ms} ms"),
        ]
    out += [
        MonitorAlert("db-cpu", "db", "v1/dbaas/alerts/cpu_alerts", "GreaterThan", a.cpu_percent, "10m",
                     f"the database's CPU is above {a.cpu_percent}% for 10 minutes"),
        MonitorAlert("db-memory", "db", "v1/dbaas/alerts/memory_utilization_alerts", "GreaterThan",
                     a.memory_percent, "10m",
                     f"the database uses more than {a.memory_percent}% of its memory for 10 minutes"),
        MonitorAlert("db-disk", "db", "v1/dbaas/alerts/disk_utilization_alerts", "GreaterThan",
                     a.disk_percent, "5m", f"the database's disk is more than {a.disk_percent}% full"),
    ]
    return out


def uptime_alerts(settings: Settings, https: bool) -> list[UptimeAlert]:
    """The uptime check's alerts: down from every region, slow, and (with TLS) a certificate
    about to expire. prod hears after 2 minutes down, other stacks after 5."""
    if not heard(settings):
        return []
    a = settings.alerts
    assert a is not None
    out = [UptimeAlert("down", "down_global", None, None, "2m" if settings.is_prod else "5m"),
           UptimeAlert("latency", "latency", "greater_than", a.response_time_ms, "5m")]
    if https:
        out.append(UptimeAlert("ssl-expiry", "ssl_expiry", "less_than", SSL_EXPIRY_DAYS, "2m"))
    return out


def uptime_regions(region: str | None) -> list[str]:
    return list(UPTIME_REGIONS.get((region or "")[:3], ("us_east", "eu_west")))
