"""Keys a role may not use: hidden from the footer, and pressed anyway they say why."""

from __future__ import annotations

from textual import events


class RoleKeys:
    """Mixin for a view whose bindings need permissions (`PERMISSION`: action -> permission).

    The footer shows only what the signed-in role may do; a key it may not use is not silently
    ignored but answered with a notification naming the role it needs."""

    PERMISSION: dict[str, str] = {}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide actions the signed-in role may not do (the service checks again)."""
        need = self.PERMISSION.get(action)
        return True if need is None else self.app.can(need)  # type: ignore[attr-defined]

    def on_key(self, event: events.Key) -> None:
        """A key bound here that the role may not use: say why instead of doing nothing."""
        for binding in self._bindings.key_to_bindings.get(event.key, ()):  # type: ignore[attr-defined]
            need = self.PERMISSION.get(binding.action)
            if need is not None and not self.app.can(need):  # type: ignore[attr-defined]
                event.stop()
                event.prevent_default()
                self.app.explain_refusal(binding.description, need)  # type: ignore[attr-defined]
                return
