"""Is it really gone? Knowledge-recovery analysis, attacks on unlearned models, and the audit."""
