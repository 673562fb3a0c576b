// The richer flows of files and identities: claiming a file's ownership with its token, and a
// deletion process that peers learn of (PeerToBeDeleted) and see cancelled (PeerDeletionCancelled).
"use strict";

const { createAccount, check, runCheck, establishRelationship, attachmentBytes, inMinutes } = require("./lib");
const { CoreBuffer } = require("@nmshd/crypto");

async function expectError(promise, what) {
    try {
        await promise;
    } catch (error) {
        return error;
    }
    throw new Error(`check failed: ${what} should have been refused`);
}

runCheck("deletion-and-ownership", async ({ settings, transport, connection }) => {
    const alice = await createAccount(transport, connection, "alice");
    const bob = await createAccount(transport, connection, "bob");
    const relationshipId = await establishRelationship(alice, bob, settings.baseUrl);

    // File ownership: bob claims alice's file with the token she shares; she hears of it.
    const file = await alice.files.sendFile({
        buffer: CoreBuffer.from(attachmentBytes(4096)),
        title: "to be handed over",
        filename: "handover.bin",
        mimetype: "application/octet-stream",
        expiresAt: inMinutes(60),
    });
    const token = file.ownershipToken;
    check(typeof token === "string" && token.length === 20, "the upload returns an ownership token");
    await bob.files.getOrLoadFile(file.id, file.secretKey);
    const validation = await bob.files.validateFileOwnershipToken(file.id, token);
    check(validation.isValid === true, "the token validates");
    const claimed = await bob.files.claimFileOwnership(file.id, token);
    check(claimed.owner.equals(bob.identity.address), "bob owns the file after claiming it");
    await alice.syncEverything();
    const aliceCopy = await alice.files.getFile(file.id);
    check(aliceCopy.owner.equals(bob.identity.address), "alice learns of the claim by syncing");
    check(aliceCopy.ownershipToken === undefined, "alice's copy forgets the old token");
    await expectError(alice.files.regenerateFileOwnershipToken(file.id), "regenerating a token of a file one gave away");
    const regenerated = await bob.files.regenerateFileOwnershipToken(file.id);
    check(regenerated.ownershipToken !== token, "the new owner regenerates the token");

    // Deletion: bob learns that alice is to be deleted, then that she is not.
    const process = await alice.identityDeletionProcess.initiateIdentityDeletionProcess(7);
    check(process.status === "Active", `the deletion process is active, not ${process.status}`);
    await bob.syncEverything();
    const toBeDeleted = await bob.relationships.getRelationship(relationshipId);
    check(toBeDeleted.peerDeletionInfo?.deletionStatus === "ToBeDeleted", "bob sees alice to be deleted");
    await expectError(alice.syncEverything(), "a sync of an identity that is to be deleted");

    const cancelled = await alice.identityDeletionProcess.cancelIdentityDeletionProcess(process.id.toString());
    check(cancelled.status === "Cancelled", `the deletion process is cancelled, not ${cancelled.status}`);
    await bob.syncEverything();
    const kept = await bob.relationships.getRelationship(relationshipId);
    check(kept.peerDeletionInfo === undefined, "bob sees alice's deletion cancelled");
    await alice.syncEverything();

    await alice.close();
    await bob.close();
    return { file: file.id.toString(), deletionProcess: process.id.toString() };
});
