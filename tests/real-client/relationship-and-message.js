// The official client's whole flow (spec/real-client.md, steps 1-8): two identities relate through a
// template shared by a token, exchange messages (one with a file attached, downloaded and compared
// byte for byte) and sync the datawallet.
"use strict";

const {
    createAccount,
    check,
    runCheck,
    establishRelationship,
    attachmentBytes,
    sendMessageWithAttachment,
    checkAttachment,
} = require("./lib");

runCheck("relationship-and-message", async ({ settings, transport, connection }) => {
    const alice = await createAccount(transport, connection, "alice");
    const bob = await createAccount(transport, connection, "bob");

    const relationshipId = await establishRelationship(alice, bob, settings.baseUrl);

    const sent = await alice.messages.sendMessage({
        recipients: [bob.identity.address],
        content: { subject: "hello", body: "from alice" },
    });
    const bobChanges = await bob.syncEverything();
    check(bobChanges.messages.some((m) => m.id.equals(sent.id)), "bob receives the message by syncing");
    const received = await bob.messages.getMessage(sent.id);
    check(received && !received.isOwn, "bob holds alice's message");
    check(received.content.toJSON().body === "from alice", "bob reads what alice wrote");
    check(received.createdBy.equals(alice.identity.address), "the message names its sender");
    check(received.recipients.length === 1, "bob sees one recipient");
    check(received.recipients[0].receivedAt !== undefined, "bob's copy is marked received");

    const reply = await bob.messages.sendMessage({
        recipients: [alice.identity.address],
        content: { subject: "re: hello", body: "from bob" },
    });
    await alice.syncEverything();
    const answer = await alice.messages.getMessage(reply.id);
    check(answer && answer.content.toJSON().body === "from bob", "alice reads the reply");

    // Steps 6-7: a file attached to a message; bob downloads it and compares the bytes.
    const bytes = attachmentBytes();
    const { file, message } = await sendMessageWithAttachment(alice, bob, bytes);
    const withAttachment = await bob.syncEverything();
    check(withAttachment.messages.some((m) => m.id.equals(message.id)), "bob receives the message with the file");
    const size = await checkAttachment(bob, message.id, file.id, bytes, "bob");
    const byRelationship = await alice.messages.getMessagesByRelationshipId(relationshipId);
    check(byRelationship.length === 3, `alice files all messages under the relationship (${byRelationship.length})`);

    for (const account of [alice, bob]) {
        await account.syncDatawallet();
        await account.syncEverything();
        check((await account.getLastCompletedSyncTime()) !== undefined, "a completed sync is recorded");
    }
    await alice.close();
    await bob.close();
    return { relationship: relationshipId.toString(), messages: 3, attachmentBytes: size };
});
