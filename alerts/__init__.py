"""Alert rules, their evaluation and notifiers. Never imports Textual."""
