"""One way to apply a per-asset policy (freshness, automation) to the definitions, by asset key."""

from collections.abc import Callable, Mapping

import dagster as dg


def map_named_specs(
    assets: list, names: Mapping[str, object], apply: Callable[[dg.AssetSpec], dg.AssetSpec]
) -> list:
    """`assets` with `apply` run on each asset spec whose key (as a string) is in `names`; everything else (other
    assets, checks, specs not named) is returned unchanged, as the same object."""

    def keys(item) -> list[dg.AssetKey]:
        if isinstance(item, dg.AssetSpec):
            return [item.key]
        return list(item.keys) if isinstance(item, dg.AssetsDefinition) else []

    def named(spec: dg.AssetSpec) -> dg.AssetSpec:
        return apply(spec) if spec.key.to_user_string() in names else spec

    return [
        dg.map_asset_specs(named, [item])[0] if any(k.to_user_string() in names for k in keys(item)) else item
        for item in assets
    ]
