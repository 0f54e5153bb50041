"""initial schema: scans, hosts, findings, audits, plans

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("targets_key", sa.Text, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("hosts_count", sa.Integer, nullable=False),
        sa.Column("exposed_count", sa.Integer, nullable=False),
        sa.Column("findings_count", sa.Integer, nullable=False),
    )
    op.create_index("ix_scans_targets_key", "scans", ["targets_key"])
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("sort_key", sa.String(300), nullable=False),
        sa.Column("hostname", sa.String(300)),
        sa.Column("netbios_name", sa.String(300)),
        sa.Column("netbios_domain", sa.String(300)),
        sa.Column("dns_name", sa.String(300)),
        sa.Column("os_name", sa.String(300)),
        sa.Column("smb1", sa.Boolean),
        sa.Column("signing", sa.String(16)),
        sa.Column("worst", sa.Integer, nullable=False),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("scan_id", "address", name="uq_hosts_scan_address"),
    )
    op.create_index("ix_hosts_scan_sort", "hosts", ["scan_id", "sort_key"])
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("finding", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("port", sa.Integer),
        sa.Column("evidence", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("inferred", sa.Boolean, nullable=False),
        sa.Column("cves", sa.JSON, nullable=False),
    )
    op.create_index("ix_findings_scan_finding", "findings", ["scan_id", "finding", "status", "address"])
    op.create_index("ix_findings_scan_address", "findings", ["scan_id", "address"])
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(300)),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scan_id", sa.Integer, sa.ForeignKey("scans.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for name in ("plans", "audits", "findings", "hosts", "scans"):
        op.drop_table(name)
