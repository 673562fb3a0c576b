// An identity adds a second device from a device shared secret; the new device logs in, changes
// its password and rebuilds the identity's state from the datawallet (official client library).
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

// What the identity creates before the second device arrives, and how the new device proves it
// sees it (step 9 of spec/real-client.md): `create` runs on the first device, `verify` on the
// second one. `context` holds the settings, the transport and the local database connection;
// accounts pushed to `context.opened` are closed at the end.
const SYNCED_DATA = [
    {
        name: "device records",
        create: async (alice) => {
            const spare = await alice.devices.sendDevice({ name: "spare device" });
            return { spareId: spare.id.toString() };
        },
        verify: async (second, { spareId }) => {
            const names = (await second.devices.list()).map((device) => [device.id.toString(), device.name]);
            check(names.some(([id, name]) => id === spareId && name === "spare device"), "the spare device is known");
        },
    },
    {
        name: "relationship and messages with an attachment",
        create: async (alice, context) => {
            const bob = await createAccount(context.transport, context.connection, "bob");
            context.opened.push(bob);
            const relationshipId = await establishRelationship(alice, bob, context.settings.baseUrl);
            const bytes = attachmentBytes();
            const { file, message } = await sendMessageWithAttachment(alice, bob, bytes);
            await bob.syncEverything();
            const reply = await bob.messages.sendMessage({
                recipients: [alice.identity.address],
                content: { subject: "re: with an attachment", body: "got it" },
            });
            await alice.syncEverything();
            check((await alice.messages.getMessage(reply.id)) !== undefined, "alice receives bob's reply");
            return { relationshipId, messageId: message.id, fileId: file.id, replyId: reply.id, bytes };
        },
        verify: async (second, { relationshipId, messageId, fileId, replyId, bytes }) => {
            const relationship = await second.relationships.getRelationship(relationshipId);
            check(relationship && relationship.status === "Active", "the new device knows the active relationship");
            await checkAttachment(second, messageId, fileId, bytes, "the new device");
            const reply = await second.messages.getMessage(replyId);
            check(reply && reply.content.toJSON().body === "got it", "the new device reads the received reply");
            const messages = await second.messages.getMessagesByRelationshipId(relationshipId);
            check(messages.length === 2, `the new device files both messages under the relationship (${messages.length})`);
        },
    },
];

// Device routes that need no datawallet: the language, push registration, deleting a device that
// never logged in.
async function deviceHousekeeping(alice) {
    await alice.activeDevice.setCommunicationLanguage("de");
    const registration = await alice.registerPushNotificationToken({
        platform: "dummy",
        handle: "a-handle-for-the-dummy-service",
        appId: "backbone-check",
    });
    check(registration.devicePushIdentifier.startsWith("DPI"), "a push registration gets a DPI identifier");
    const again = await alice.registerPushNotificationToken({
        platform: "dummy",
        handle: "another-handle-for-the-dummy-service",
        appId: "backbone-check",
    });
    check(again.devicePushIdentifier === registration.devicePushIdentifier, "the DPI identifier is stable");
    await alice.unregisterPushNotificationToken();

    const unused = await alice.devices.sendDevice({ name: "never used" });
    await alice.devices.delete(unused);
    check((await alice.devices.get(unused.id)) === undefined, "the unused device is gone");
}

runCheck("second-device", async ({ settings, transport, connection }) => {
    const alice = await createAccount(transport, connection, "alice");
    await alice.syncEverything();
    await deviceHousekeeping(alice);

    if (!settings.datawalletEnabled) {
        await alice.close();
        // A new device rebuilds its identity from the datawallet; without it there is nothing to onboard.
        return { secondDevice: "skipped without the datawallet" };
    }

    const context = { settings, transport, connection, opened: [] };
    const created = [];
    for (const item of SYNCED_DATA) created.push(await item.create(alice, context));

    const sent = await alice.devices.sendDevice({ name: "second device", isAdmin: true });
    await alice.syncDatawallet();
    const sharedSecret = await alice.devices.getSharedSecret(sent.id);

    // A new local database: this is the other phone. init() logs in with the initial password,
    // changes it and pulls the whole datawallet.
    const second = await createAccount(transport, connection, "alice-second-device", sharedSecret);
    check(second.identity.address.equals(alice.identity.address), "the new device belongs to the identity");
    check(second.activeDevice.id.equals(sent.id), "the new device is the one that was sent");
    const credentials = await second.activeDevice.getCredentials();
    check(credentials.password !== sharedSecret.password, "the new device changed its initial password");

    const known = (await second.devices.list()).map((device) => device.id.toString());
    check(known.includes(alice.activeDevice.id.toString()), "the new device knows the first device");
    check(known.includes(sent.id.toString()), "the new device knows itself");
    for (const [position, item] of SYNCED_DATA.entries()) await item.verify(second, created[position]);

    // A fresh login must use the changed password.
    second.authenticator.clear();
    await second.syncEverything();
    await second.syncDatawallet();

    // The first device sees what the new one pushed: its record now carries the device's key.
    await alice.syncDatawallet();
    const seen = await alice.devices.get(sent.id);
    check(seen !== undefined && seen.publicKey !== undefined, "the first device sees the onboarded device");
    await alice.syncEverything();

    await second.close();
    await alice.close();
    for (const account of context.opened) await account.close();
    return { devices: known.length, syncedData: SYNCED_DATA.map((item) => item.name) };
});
