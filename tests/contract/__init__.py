"""Black-box tests of the product contract (SPEC): commands, JSON shapes, exit codes, secrets."""
