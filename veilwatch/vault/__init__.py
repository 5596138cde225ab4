"""The key vault: raw face pixels are recoverable only with K of N key holders.

    create_vault(holders, k, first_day) -> VaultPublic + one encrypted share bundle per holder
    seal(plaintext, vault.epoch_key(day), associated)       anyone with vault.json (the recorder)
    new_request(vault, camera=..., ...) -> request, request private key         the server
    approve(bundle, passphrase, request, now) -> Approval       a key holder, offline
    check_approval(...) / collect(...) -> EpochKeys             the server, with K approvals
    keys.open_sealed(blob, associated); keys.wipe()             the server, then forget

One X25519 key pair per UTC day; each private key is split K-of-N (Shamir) at set-up and then
dropped, so the server alone can never decrypt. Set-up covers `days` days (366 by default): re-run
it, making a new vault, before the last one.
"""

from veilwatch.errors import ApprovalRefused, SealedDataError, VaultError, VaultFileError, WrongPassphraseError
from veilwatch.vault.bundle import (
    DEFAULT_KDF,
    BundleInfo,
    HolderSpec,
    KdfParams,
    UnlockedBundle,
    create_vault,
    read_bundle_info,
    unlock_bundle,
)
from veilwatch.vault.collect import EpochKeys, RefusalReason, check_approval, collect
from veilwatch.vault.public import HolderPublic, VaultPublic
from veilwatch.vault.sealing import EpochPublicKey, open_sealed, seal, sealed_epoch
from veilwatch.vault.unmask import Approval, UnmaskRequest, approve, days_touched, new_request

__all__ = [
    "DEFAULT_KDF",
    "Approval",
    "ApprovalRefused",
    "BundleInfo",
    "EpochKeys",
    "EpochPublicKey",
    "HolderPublic",
    "HolderSpec",
    "KdfParams",
    "RefusalReason",
    "SealedDataError",
    "UnlockedBundle",
    "UnmaskRequest",
    "VaultError",
    "VaultFileError",
    "VaultPublic",
    "WrongPassphraseError",
    "approve",
    "check_approval",
    "collect",
    "create_vault",
    "days_touched",
    "new_request",
    "open_sealed",
    "read_bundle_info",
    "seal",
    "sealed_epoch",
    "unlock_bundle",
]
