// The richer flows of files and identities: claiming a file's ownership with its token, a
// deletion process that peers learn of (PeerToBeDeleted) and see cancelled (PeerDeletionCancelled),
// and an identity that is deleted for good (PeerDeleted, which carries the deletion date).
"use strict";

const {
    createAccount,
    check,
    runCheck,
    establishRelationship,
    attachmentBytes,
    inMinutes,
    loggedErrors,
    runIdentityDeletionJob,
} = require("./lib");
const { CoreDate } = require("@nmshd/core-types");
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

    // Deleted for good: no grace period, then the job; bob's client takes PeerDeleted without a
    // complaint (it refuses the event when the date is missing) and marks alice deleted.
    const final = await alice.identityDeletionProcess.initiateIdentityDeletionProcess(0);
    const beforeDeletion = CoreDate.utc();
    await runIdentityDeletionJob();
    const errorsBefore = loggedErrors.length;
    await bob.syncEverything();
    const complaints = loggedErrors.slice(errorsBefore);
    check(complaints.length === 0, `bob's client logs no error while syncing the deletion: ${complaints.join(" | ")}`);
    const deleted = await bob.relationships.getRelationship(relationshipId);
    check(deleted.peerDeletionInfo?.deletionStatus === "Deleted", "bob sees alice deleted");
    const deletionDate = deleted.peerDeletionInfo.deletionDate;
    check(
        !deletionDate.isBefore(beforeDeletion.subtract({ seconds: 1 })) && !deletionDate.isAfter(CoreDate.utc()),
        `the deletion date is when the job deleted alice, not ${deletionDate.toISOString()}`,
    );
    check(deleted.status === "DeletionProposed", `alice's side is decomposed, not ${deleted.status}`);

    await alice.close();
    await bob.close();
    return {
        file: file.id.toString(),
        deletionProcess: process.id.toString(),
        finalDeletionProcess: final.id.toString(),
    };
});
