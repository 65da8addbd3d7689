"""Text forms of contract values shared by the command line and the demo."""

from __future__ import annotations

from typing import Any


def offer_lines(offers: list[dict[str, Any]]) -> list[str]:
    """One line per offer of a ``provider: "auto"`` request: id, status, product, price (and its
    comparable value), first opportunity, and why it dropped out."""
    lines = []
    for offer in offers:
        product = offer["product"]
        what = product.get("dataProductId") or f"{product.get('mission')} {product.get('programmingType')}"
        parts = [f"{offer['id']:<12}", f"{offer['status']:<8}", f"{offer['provider']} {what}"]
        price, comparable = offer.get("price"), offer.get("comparablePrice")
        if price:
            cost = f"{price['amount']:g} {price['currency']}"
            if comparable and comparable["currency"] != price["currency"]:
                cost += f" (~{comparable['amount']:g} {comparable['currency']})"
            parts.append(cost)
        elif offer["status"] == "OFFERED":
            parts.append("no price yet")
        if offer.get("firstOpportunity"):
            parts.append(f"first opportunity {offer['firstOpportunity']}")
        if offer.get("reason"):
            parts.append(f"{offer['reason']['code']}: {offer['reason']['message']}")
        lines.append("  ".join(parts))
    return lines
