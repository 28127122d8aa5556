"""Runs last in this folder (the name sorts last): after every orders scenario, including the faults and
the database restart, neither database nor any service log holds a card number or CVC."""

from __future__ import annotations

from pathlib import Path

from services.runner.postgres import PostgresServer
from tests.services.orders.support import db
from tests.services.payments.support import card_data_in, dump_database, log_texts
from tests.support.procs import ServiceProcess


def test_no_card_number_or_cvc_in_any_row_log_or_body(orders: ServiceProcess, payments: ServiceProcess,
                                                      pg: PostgresServer, logdir: Path) -> None:
    """Card data may pass through orders and payments, never stay: not in a row, not in a log line."""
    databases = pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'orders%' OR datname LIKE 'payments%'")
    assert db(orders) in databases.split()
    assert db(payments) in databases.split()
    for name in databases.split():  # every orders/payments database of the session (fault instances too)
        dump = dump_database(pg, name)
        assert "COPY public." in dump
        assert card_data_in(dump) == [], name
    assert "\t4242\t" in dump_database(pg, db(payments))  # the dump is real: last4 is stored, the number is not
    for name, text in log_texts(logdir):
        assert card_data_in(text) == [], name
