"""The Textual dashboard. Only this package (and ``mqtop.commands.dashboard``, lazily) imports
Textual; the rest of mqtop, the collectors and the alerts stay UI-free."""
