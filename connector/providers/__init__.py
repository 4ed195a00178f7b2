"""The provider registry: config names to provider modules."""

from connector.callback import Provider
from connector.providers import bandwidth_v2

PROVIDERS: dict[str, Provider] = {p.name: p for p in (bandwidth_v2.PROVIDER,)}
