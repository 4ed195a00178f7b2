"""The provider registry: every module (or package) here that declares a `PROVIDER`, and every
installed plugin that registers one under the `mms_connector.providers` entry-point group.

Adding a provider is adding its module (or installing its package): routes, config validation
of its options, the chart, `mms-connector dev` and bench all read PROVIDERS, and nothing else
names a provider.
"""

import importlib
import pkgutil
from importlib.metadata import entry_points

from connector.providers.contract import Provider

# What the providers share, not providers.
SHARED_MODULES = {"contract", "fields", "signatures"}
# A plugin's package declares, e.g. in its pyproject.toml:
#   [project.entry-points."mms_connector.providers"]
#   acme = "mms_acme:PROVIDER"
ENTRY_POINT_GROUP = "mms_connector.providers"


class PluginError(Exception):
    """An installed plugin that does not declare a usable provider."""


def _discover() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name not in SHARED_MODULES:
            provider: Provider = importlib.import_module(f"{__name__}.{module.name}").PROVIDER
            found[provider.name] = provider
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {entry.name!r} ({entry.value})"
        try:
            plugin = entry.load()
        except Exception as exc:  # an installed package that does not import: say which
            raise PluginError(f"{where} does not load: {exc!r}") from exc
        if not isinstance(plugin, Provider):
            raise PluginError(f"{where} is a {type(plugin).__name__}, not a Provider")
        if plugin.name in found:
            raise PluginError(f"{where} declares {plugin.name!r}, which is already a provider")
        found[plugin.name] = plugin
    return found


PROVIDERS: dict[str, Provider] = _discover()
