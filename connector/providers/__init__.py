"""The provider registry: every module (or package) here that declares a `PROVIDER`.

Adding a provider is adding its module: routes, config validation of its options, the chart,
`mms-connector dev` and bench all read PROVIDERS, and nothing else names a provider.
"""

import importlib
import pkgutil

from connector.providers.contract import Provider

# What the providers share, not providers.
SHARED_MODULES = {"contract", "fields"}


def _discover() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name not in SHARED_MODULES:
            provider: Provider = importlib.import_module(f"{__name__}.{module.name}").PROVIDER
            found[provider.name] = provider
    return found


PROVIDERS: dict[str, Provider] = _discover()
