"""Backends: code generators from the lowered IR. Each is a table of rules keyed by op
name plus a small driver; an op a backend has no rule for is named in its error."""
