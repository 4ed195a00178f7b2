"""The provider registry: config names to provider modules."""

from connector.callback import Provider
from connector.providers import bandwidth_v1, bandwidth_v2, openmarket, sinch

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (bandwidth_v1.PROVIDER, bandwidth_v2.PROVIDER, openmarket.PROVIDER, sinch.PROVIDER)
}
