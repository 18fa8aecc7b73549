"""The prerequisites checklist, headless (no Qt, no HTTP)."""

from __future__ import annotations

import dataclasses

import pytest

from xtwizard.cloud.graph import SubscribedSku, is_cross_tenant_migration_sku
from xtwizard.migration.prereqs import (
    EXCHANGE_ADMIN,
    GLOBAL_ADMIN,
    Status,
    TenantFacts,
    can_continue,
    evaluate,
)


def facts(**kw):
    base = dict(tenant_id="t-target", display_name="Fabrikam", initial_domain="fabrikaminc.onmicrosoft.com",
                verified_domains=["fabrikaminc.onmicrosoft.com", "fabrikam.example"],
                admin_upn="admin@fabrikaminc.onmicrosoft.com", admin_role_ids={GLOBAL_ADMIN}, is_dehydrated=False,
                accepted_domains=["fabrikaminc.onmicrosoft.com", "fabrikam.example"], migration_license_units=0,
                migration_license_total=0, subscriptions_with_rights=["Fabrikam Production"])
    base.update(kw)
    return TenantFacts(**base)


SOURCE = facts(tenant_id="t-source", display_name="Northwind", initial_domain="northwindtraders.onmicrosoft.com",
               verified_domains=["northwindtraders.onmicrosoft.com", "northwind.example"],
               admin_upn="admin@northwindtraders.onmicrosoft.com", accepted_domains=["northwindtraders.onmicrosoft.com"],
               migration_license_units=10, migration_license_total=10, subscriptions_with_rights=[])
TARGET = facts()


def by_id(checks):
    return {c.id: c for c in checks}


def test_a_ready_pair_can_continue():
    checks = evaluate(SOURCE, TARGET)
    assert can_continue(checks)
    assert by_id(checks)["migration-licenses"].status is Status.OK
    assert "10 licenses available" in by_id(checks)["migration-licenses"].explanation


def test_same_tenant_on_both_sides_is_a_blocker_that_names_the_exchange_error():
    c = by_id(evaluate(TARGET, TARGET))["distinct-tenants"]
    assert c.status is Status.BLOCKER and "cannot be equal" in c.explanation and c.fix


def test_missing_roles_say_which_step_needs_what():
    checks = by_id(evaluate(dataclasses.replace(SOURCE, admin_role_ids={EXCHANGE_ADMIN}),
                            dataclasses.replace(TARGET, admin_role_ids=set())))
    t, s = checks["target-admin-roles"], checks["source-admin-roles"]
    assert t.status is Status.BLOCKER and "register the migration app" in t.explanation and "no administrator role" in t.explanation
    assert s.status is Status.OK  # an Exchange admin may do the source's Exchange part
    consent = checks["source-consent"]
    assert consent.status is Status.WARNING and "Mailbox.Migration" in consent.explanation and "link" in consent.fix


def test_dehydrated_target_is_fixed_later_not_blocking():
    checks = evaluate(SOURCE, dataclasses.replace(TARGET, is_dehydrated=True))
    c = by_id(checks)["target-customization"]
    assert c.status is Status.ACTION and "Enable-OrganizationCustomization" in c.fix
    assert can_continue(checks)


def test_no_license_anywhere_is_a_blocker_with_where_to_buy():
    c = by_id(evaluate(dataclasses.replace(SOURCE, migration_license_units=0), TARGET))["migration-licenses"]
    assert c.status is Status.BLOCKER and "CrossTenantMigrationWithoutLicensePermanentException" in c.explanation
    assert "add-on" in c.fix


def test_shared_domain_and_leftovers_are_reported():
    checks = by_id(evaluate(dataclasses.replace(SOURCE, verified_domains=["fabrikam.example"],
                                                existing_relationships=["Fabrikam move"]), TARGET))
    assert checks["no-shared-domains"].status is Status.BLOCKER
    assert "organization relationships in the source: Fabrikam move" in checks["existing-setup"].explanation


def test_no_azure_rights_only_removes_the_key_vault_option():
    checks = evaluate(SOURCE, dataclasses.replace(TARGET, subscriptions_with_rights=[]))
    assert by_id(checks)["azure-keyvault"].status is Status.WARNING
    assert can_continue(checks)


def test_exchange_unreadable_blocks_with_the_reason():
    c = by_id(evaluate(SOURCE, dataclasses.replace(TARGET, exchange_error="403 access denied")))["target-exchange"]
    assert c.status is Status.BLOCKER and "403 access denied" in c.explanation


@pytest.mark.parametrize(("part", "yes"), [("Cross_tenant_user_data_migration", True),
                                           ("CROSSTENANTUSERDATAMIGRATION", True),
                                           ("CSP_Cross-Tenant-User-Data-Migration", True), ("SPB", False)])
def test_sku_spellings(part, yes):
    sku = SubscribedSku(id="x", sku_id="y", sku_part_number=part, capability_status="Enabled", consumed_units=0,
                        prepaid_enabled=1, service_plans=())
    assert is_cross_tenant_migration_sku(sku) is yes
