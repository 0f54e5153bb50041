"""The store's tables (SQLAlchemy 2).  The schema itself is made by the
Alembic revisions in migrations/versions; these classes must match the head.

Hosts keep the whole host JSON (`data`) plus a few columns copied out of it
for filtering and sorting; findings are one row per host finding, joined to
hosts by (scan_id, address) so a batch of hosts and its findings can be
inserted with two executemany calls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Scan(Base):
    __tablename__ = "scans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | finished | interrupted
    targets: Mapped[list] = mapped_column(JSON)
    targets_key: Mapped[str] = mapped_column(Text, index=True)
    options: Mapped[dict] = mapped_column(JSON)
    hosts_count: Mapped[int] = mapped_column(Integer, default=0)
    exposed_count: Mapped[int] = mapped_column(Integer, default=0)
    findings_count: Mapped[int] = mapped_column(Integer, default=0)


class Host(Base):
    __tablename__ = "hosts"
    __table_args__ = (
        UniqueConstraint("scan_id", "address", name="uq_hosts_scan_address"),
        Index("ix_hosts_scan_sort", "scan_id", "sort_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(255))
    sort_key: Mapped[str] = mapped_column(String(300))
    hostname: Mapped[str | None] = mapped_column(String(300), nullable=True)
    netbios_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    netbios_domain: Mapped[str | None] = mapped_column(String(300), nullable=True)
    dns_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    os_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    smb1: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    signing: Mapped[str | None] = mapped_column(String(16), nullable=True)
    worst: Mapped[int] = mapped_column(Integer)  # index into SEVERITIES of the worst vulnerable/likely finding, 9 if none
    added: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict] = mapped_column(JSON)


class FindingRow(Base):
    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_scan_finding", "scan_id", "finding", "status", "address"),
        Index("ix_findings_scan_address", "scan_id", "address"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(255))
    finding: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    inferred: Mapped[bool] = mapped_column(Boolean, default=False)
    cves: Mapped[list] = mapped_column(JSON)


class Audit(Base):
    __tablename__ = "audits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[str | None] = mapped_column(String(300), nullable=True)
    data: Mapped[dict] = mapped_column(JSON)


class Plan(Base):
    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict] = mapped_column(JSON)
