"""Which test provokes which error code of devices (spec §4.3) and synchronization (§4.9) through HTTP.

Every code a device or sync route answers with is listed in COVERAGE with the tests that provoke
it over HTTP; the test below checks that each named test exists and names its code, so the table
cannot silently rot. In short (`v.` = `error.platform.validation.`, all 400 unless noted):

- v.device.invalidSignature: POST /Devices signed with another key or over a changed challenge
- v.device.challengeHasExpired: POST /Devices with a challenge expired more than an hour ago
- v.device.onlyOneBackupDeviceCanExist: a second backup device
- v.device.changePasswordFailed: a wrong old password; a weak new one outside development
- v.device.deviceCannotBeDeleted: DELETE of a logged-in device or of another identity's device
- v.invalidDeviceCommunicationLanguage: POST /Devices, PUT /Devices/Self
- v.invalidPnsPlatform: PUT /Devices/Self/PushNotifications with an unknown platform
- v.datawallet.datawalletNotUpToDate: a push from a stale local index (same or other device)
- v.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun: a push while a run is open
- v.datawallet.insufficientSupportedDatawalletVersion: a datawallet newer than the header
- error.platform.datawallet.cannotDowngrade: FinalizeDatawalletVersionUpgrade to a lower version
- error.platform.datawallet.datawalletVersionOfModificationTooHigh: push and both finalizations
- v.syncRun.syncRunAlreadyFinalized: read, finalize or refresh a finalized (or cancelled) run
- v.syncRun.cannotFinalizeSyncRunStartedByAnotherDevice: the second device, both run types
- v.syncRun.cannotRefreshExpirationTimeOfSyncRunStartedByAnotherDevice: the second device
- v.syncRun.cannotReadExternalEventsOfASyncRunStartedByAnotherDevice: the second device
- v.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning: the same or the second device
- v.syncRun.unexpectedSyncRunType: finalizing a run as the other type
- v.syncRun.cannotStartSyncRunWhileIdentityIsToBeDeleted: a started deletion process, both types
- v.device.onlyOneActiveDeletionProcessAllowed: a second deletion process while one is active
- v.device.deletionProcessIsNotInRequiredStatus: cancelling a cancelled process
- v.device.gracePeriodHasAlreadyExpired: cancelling after the grace period
- v.featureFlag.maxNumberOfFeatureFlagsExceeded: more than 200 flags, in one change or in total
- error.platform.recordNotFound (404): unknown challenge, device, sync run, datawallet
- v.invalidPropertyValue: missing fields, handle length, app id, environment, empty pushes
- v.invalidId: malformed device and sync run ids
- v.pagination.invalidPageSize: GET /Devices, GET /Datawallet/Modifications
- error.platform.inputCannotBeParsed: wrong JSON types, unknown enum names
- OAuth access_denied (and invalid_grant): /connect/token after repeated wrong passwords
"""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

from tests.integration import (
    test_deletion_processes_api,
    test_devices_api,
    test_feature_flags_api,
    test_onboarding_api,
    test_synchronization_api,
)

DEVICES = test_devices_api
SYNC = test_synchronization_api
DELETION = test_deletion_processes_api

COVERAGE: dict[str, list[tuple[ModuleType, str]]] = {
    "error.platform.validation.device.invalidSignature": [
        (DEVICES, "test_the_challenge_must_be_signed_with_the_identitys_stored_key"),
    ],
    "error.platform.validation.device.challengeHasExpired": [
        (DEVICES, "test_the_challenge_must_exist_and_be_fresh"),
    ],
    "error.platform.validation.device.onlyOneBackupDeviceCanExist": [
        (DEVICES, "test_at_most_one_backup_device_which_turns_normal_on_first_login"),
    ],
    "error.platform.validation.device.changePasswordFailed": [
        (DEVICES, "test_changing_the_password_needs_the_old_one"),
        (DEVICES, "test_outside_development_new_passwords_must_be_strong"),
    ],
    "error.platform.validation.device.deviceCannotBeDeleted": [
        (DEVICES, "test_only_never_logged_in_devices_of_the_own_identity_can_be_deleted"),
    ],
    "error.platform.validation.invalidDeviceCommunicationLanguage": [
        (DEVICES, "test_a_device_has_a_valid_communication_language"),
    ],
    "error.platform.validation.invalidPnsPlatform": [
        (DEVICES, "test_push_registrations_are_validated"),
    ],
    "error.platform.validation.datawallet.datawalletNotUpToDate": [
        (SYNC, "test_a_push_must_start_from_the_latest_index"),
        (SYNC, "test_devices_share_one_datawallet_and_its_index"),
    ],
    "error.platform.validation.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun": [
        (SYNC, "test_no_push_during_an_open_sync_run"),
        (SYNC, "test_only_the_creating_device_may_read_finalize_or_refresh_a_run"),
    ],
    "error.platform.validation.datawallet.insufficientSupportedDatawalletVersion": [
        (SYNC, "test_an_insufficient_supported_version_is_refused"),
    ],
    "error.platform.datawallet.cannotDowngrade": [
        (SYNC, "test_a_datawallet_cannot_be_downgraded"),
    ],
    "error.platform.datawallet.datawalletVersionOfModificationTooHigh": [
        (SYNC, "test_a_modification_may_not_claim_a_newer_datawallet_version"),
        (SYNC, "test_finalizing_checks_modification_versions_against_the_datawallet"),
    ],
    "error.platform.validation.syncRun.syncRunAlreadyFinalized": [
        (SYNC, "test_a_second_run_while_one_is_open_is_refused_until_it_expires"),
        (SYNC, "test_an_expired_run_of_one_device_is_cancelled_by_the_other"),
    ],
    "error.platform.validation.syncRun.cannotFinalizeSyncRunStartedByAnotherDevice": [
        (SYNC, "test_only_the_creating_device_may_read_finalize_or_refresh_a_run"),
        (SYNC, "test_another_device_finalizing_a_version_upgrade_is_refused"),
    ],
    "error.platform.validation.syncRun.cannotRefreshExpirationTimeOfSyncRunStartedByAnotherDevice": [
        (SYNC, "test_only_the_creating_device_may_read_finalize_or_refresh_a_run"),
    ],
    "error.platform.validation.syncRun.cannotReadExternalEventsOfASyncRunStartedByAnotherDevice": [
        (SYNC, "test_only_the_creating_device_may_read_finalize_or_refresh_a_run"),
    ],
    "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning": [
        (SYNC, "test_a_second_run_while_one_is_open_is_refused_until_it_expires"),
        (SYNC, "test_only_the_creating_device_may_read_finalize_or_refresh_a_run"),
    ],
    "error.platform.validation.syncRun.unexpectedSyncRunType": [
        (SYNC, "test_a_run_of_the_wrong_type_cannot_be_finalized_that_way"),
        (SYNC, "test_a_run_of_the_other_type_cannot_be_finalized_as_an_upgrade"),
    ],
    "error.platform.validation.syncRun.cannotStartSyncRunWhileIdentityIsToBeDeleted": [
        (DELETION, "test_no_sync_run_starts_while_the_identity_is_to_be_deleted"),
    ],
    "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed": [
        (DELETION, "test_starting_queues_the_identity_for_deletion"),
    ],
    "error.platform.validation.device.deletionProcessIsNotInRequiredStatus": [
        (DELETION, "test_cancelling_restores_the_identity"),
    ],
    "error.platform.validation.device.gracePeriodHasAlreadyExpired": [
        (DELETION, "test_a_process_cannot_be_cancelled_once_its_grace_period_is_over"),
    ],
    "error.platform.validation.featureFlag.maxNumberOfFeatureFlagsExceeded": [
        (test_feature_flags_api, "test_at_most_200_flags_per_identity"),
    ],
    "error.platform.recordNotFound": [
        (DEVICES, "test_the_challenge_must_exist_and_be_fresh"),
        (DEVICES, "test_only_never_logged_in_devices_of_the_own_identity_can_be_deleted"),
        (SYNC, "test_unknown_and_malformed_sync_runs"),
        (SYNC, "test_the_datawallet_is_created_by_the_first_version_upgrade"),
        (test_feature_flags_api, "test_who_may_read_an_identitys_flags"),
    ],
    "error.platform.validation.invalidPropertyValue": [
        (DEVICES, "test_adding_a_device_needs_a_token_and_the_fields"),
        (DEVICES, "test_push_registrations_are_validated"),
        (DEVICES, "test_changing_the_password_needs_the_old_one"),
        (SYNC, "test_unknown_and_malformed_sync_runs"),
    ],
    "error.platform.validation.invalidId": [
        (DEVICES, "test_only_never_logged_in_devices_of_the_own_identity_can_be_deleted"),
        (DEVICES, "test_devices_are_listed_in_pages_and_by_id"),
        (SYNC, "test_unknown_and_malformed_sync_runs"),
    ],
    "error.platform.validation.pagination.invalidPageSize": [
        (DEVICES, "test_devices_are_listed_in_pages_and_by_id"),
        (SYNC, "test_modifications_page_with_total_pages"),
    ],
    "error.platform.inputCannotBeParsed": [
        (DEVICES, "test_push_registrations_are_validated"),
        (SYNC, "test_unknown_and_malformed_sync_runs"),
    ],
    "access_denied": [
        (DEVICES, "test_repeated_wrong_passwords_lock_only_that_device"),
        (test_onboarding_api, "test_wrong_passwords_are_invalid_grants_and_lock_the_device"),
    ],
}


@pytest.mark.parametrize("code", sorted(COVERAGE))
def test_each_error_code_is_provoked_by_the_tests_named_for_it(code: str) -> None:
    # Tests may build a code from a shared prefix, so its last segment is what must appear.
    last_segment = code.rsplit(".", 1)[-1]
    for module, name in COVERAGE[code]:
        test = getattr(module, name, None)
        assert test is not None, f"{module.__name__}.{name} is gone"
        assert last_segment in inspect.getsource(test), f"{name} does not mention {code}"
