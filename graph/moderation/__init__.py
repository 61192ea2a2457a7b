"""The moderation side: the queue of flagged items, the actions on them (each in the audit log),
and the pages moderators work in (`/moderation/`)."""
