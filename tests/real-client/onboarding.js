// Two identities onboard through the official client and sync against our backbone.
"use strict";

const { createAccount, check, runCheck } = require("./lib");

runCheck("onboarding", async ({ settings, transport, connection }) => {
    const domain = new URL(settings.baseUrl).hostname;
    const alice = await createAccount(transport, connection, "alice");
    const bob = await createAccount(transport, connection, "bob");

    for (const account of [alice, bob]) {
        const address = account.identity.address.toString();
        check(address.startsWith(`did:e:${domain}:dids:`), `address ${address} uses the DID domain ${domain}`);
        await account.syncEverything();
        await account.syncDatawallet();
        check(account.activeDevice.id.toString().startsWith("DVC"), "the device has a backbone device id");
        check((await account.getLastCompletedSyncTime()) !== undefined, "a completed sync is recorded");
    }
    check(alice.identity.address.toString() !== bob.identity.address.toString(), "two identities, two addresses");

    // An authenticated challenge names its creator (the client checks that when peers validate it).
    const signed = await alice.challenges.createChallenge();
    const challenge = JSON.parse(signed.challenge);
    check(challenge.createdBy === alice.identity.address.toString(), "the challenge names its creator");
    await alice.close();
    await bob.close();
    return { identities: 2 };
});
