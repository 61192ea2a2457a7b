"""The PostgreSQL database backend (ENGINE "config.postgresql"): Django's, with a cheaper pool
check (see base.py)."""
