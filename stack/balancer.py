"""How each cloud's load balancer treats the hosts, as this program declares it: its health
check (interval, timeout, thresholds) and its idle timeout. stack/aws.py and
stack/digitalocean.py declare their balancers from these; the test bed's stand-in balancer
(tests/hosts/balancer.py) behaves by them; what a change behind a balancer must wait for is
derived from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.settings import Settings


@dataclass(frozen=True)
class Balancing:
    name: str
    interval: int  # seconds between two health checks of a host
    timeout: int  # seconds a check may take
    healthy: int  # checks in a row that make a host healthy again
    unhealthy: int  # failed checks in a row that take a host out
    idle: int  # seconds an idle connection (to a client or a host) is kept

    @property
    def out_within(self) -> int:
        """At most this long after a host's health path starts failing, the balancer no longer
        sends it new requests: `unhealthy` checks, the first up to one interval away."""
        return self.interval * self.unhealthy + self.timeout

    @property
    def back_within(self) -> int:
        """At most this long after the health path answers 200 again, the host takes requests."""
        return self.interval * self.healthy + self.timeout


# aws.lb.TargetGroup's health check and the ALB's idle timeout (docs/aws.md).
ALB = Balancing("the ALB", interval=10, timeout=5, healthy=2, unhealthy=3, idle=60)
# digitalocean.LoadBalancer's healthcheck and http_idle_timeout_seconds (docs/digitalocean.md).
DO_LB = Balancing("DigitalOcean's load balancer", interval=10, timeout=5, healthy=3, unhealthy=3, idle=60)


# Beyond the balancer's own bound: a check in flight when the drain starts, and clock skew.
DRAIN_MARGIN = 5


def drain_seconds(settings: Settings) -> tuple[int, int]:
    """(drain, undrain): how long a host's health path fails before a change that closes
    connections, and how long the host then waits to be taken back (deploy.drainSeconds and
    deploy.undrainSeconds, or what the stack's balancer needs; 0, 0 without one)."""
    b = of(settings)
    drain = settings.deploy.drain_seconds
    undrain = settings.deploy.undrain_seconds
    if drain is None:
        drain = b.out_within + DRAIN_MARGIN if b else 0
    if undrain is None:
        undrain = b.back_within if b and drain else 0
    return drain, undrain


def of(settings: Settings) -> Balancing | None:
    """The balancer the stack puts in front of its hosts, if it builds one."""
    if not settings.load_balancer:
        return None
    return {"aws": ALB, "digitalocean": DO_LB}.get(settings.platform)
