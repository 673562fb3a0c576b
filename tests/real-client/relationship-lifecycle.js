// Two identities walk relationships through reject, revoke, terminate, every reactivation answer and
// decomposition by both sides, and share a template through a password-protected token.
"use strict";

const { createAccount, check, runCheck, inMinutes, shareTemplate, establishRelationship } = require("./lib");

async function statusAfterSync(account, id) {
    await account.syncEverything();
    const relationship = await account.relationships.getRelationship(id);
    return relationship ? relationship.status : "gone";
}

async function expectStatus(account, id, expected, what) {
    const status = await statusAfterSync(account, id);
    check(status === expected, `${what}: expected ${expected}, found ${status}`);
}

async function request(owner, peer, baseUrl, passwords) {
    const { peerTemplate } = await shareTemplate(owner, peer, baseUrl, passwords);
    const relationship = await peer.relationships.sendRelationship({
        template: peerTemplate,
        creationContent: { greeting: "hello" },
    });
    await expectStatus(owner, relationship.id, "Pending", "the owner sees the request");
    return relationship.id;
}

// Both sides forget a relationship that ended; afterwards the pair can relate again.
async function decomposeBoth(first, second, id) {
    await first.relationships.decompose(id);
    check((await first.relationships.getRelationship(id)) === undefined, "the decomposer forgets the relationship");
    await expectStatus(second, id, "DeletionProposed", "the peer learns of the decomposition");
    await second.relationships.decompose(id);
    check((await second.relationships.getRelationship(id)) === undefined, "the second decomposer forgets it too");
    await first.syncEverything();
}

runCheck("relationship-lifecycle", async ({ settings, transport, connection }) => {
    const baseUrl = settings.baseUrl;
    const alice = await createAccount(transport, connection, "alice");
    const bob = await createAccount(transport, connection, "bob");
    const steps = [];

    // Rejected by the template owner.
    const rejected = await request(alice, bob, baseUrl);
    check((await alice.relationships.reject(rejected)).status === "Rejected", "alice rejects");
    await expectStatus(bob, rejected, "Rejected", "bob sees the rejection");
    // The client decomposes only Terminated relationships; a rejected one does not block a new request.
    steps.push("reject");

    // Revoked by the requester.
    const revoked = await request(alice, bob, baseUrl);
    check((await bob.relationships.revoke(revoked)).status === "Revoked", "bob revokes");
    await expectStatus(alice, revoked, "Revoked", "alice sees the revocation");
    steps.push("revoke");

    // Active through a template and token both protected by passwords.
    const secretToken = await alice.tokens.sendToken({
        content: { note: "for bob's eyes" },
        expiresAt: inMinutes(30),
        ephemeral: true,
        passwordProtection: { password: "token secret", passwordType: "pw" },
    });
    const reference = secretToken.toTokenReference(baseUrl);
    const refused = await bob.tokens
        .loadPeerTokenByReference(reference, true, "not the secret")
        .then(() => false)
        .catch((error) => error.code === "error.platform.recordNotFound");
    check(refused, "a wrong token password is refused as not found");
    const opened = await bob.tokens.loadPeerTokenByReference(reference, true, "token secret");
    check(opened.content.toJSON().note === "for bob's eyes", "the right password opens the token");
    const id = await request(alice, bob, baseUrl, { tokenPassword: "token secret", templatePassword: "template secret" });
    check((await alice.relationships.accept(id)).status === "Active", "alice accepts");
    await expectStatus(bob, id, "Active", "bob sees it active");
    steps.push("password-protected token and template", "accept");

    // Terminated, then every answer to a reactivation request.
    check((await alice.relationships.terminate(id)).status === "Terminated", "alice terminates");
    await expectStatus(bob, id, "Terminated", "bob sees the termination");

    await bob.relationships.requestReactivation(id);
    await alice.syncEverything();
    const rejectedReactivation = await alice.relationships.rejectReactivation(id);
    check(rejectedReactivation.status === "Terminated", "a rejected reactivation leaves it terminated");
    await expectStatus(bob, id, "Terminated", "bob hears of the rejection");

    await bob.relationships.requestReactivation(id);
    await bob.relationships.revokeReactivation(id);
    await expectStatus(alice, id, "Terminated", "alice hears of the request and its revocation");

    await alice.relationships.requestReactivation(id);
    await bob.syncEverything();
    check((await bob.relationships.acceptReactivation(id)).status === "Active", "bob accepts the reactivation");
    await expectStatus(alice, id, "Active", "alice sees it active again");
    const audit = (await alice.relationships.getRelationship(id)).auditLog.map((entry) => entry.reason);
    check(audit.includes("AcceptanceOfReactivation") && audit.includes("RevocationOfReactivation"), `audit log ${audit}`);
    steps.push("terminate", "reject reactivation", "revoke reactivation", "accept reactivation");

    // A message while active, then the end: terminate and decompose from both sides.
    const message = await bob.messages.sendMessage({ recipients: [alice.identity.address], content: { text: "bye" } });
    await alice.syncEverything();
    check((await alice.messages.getMessage(message.id)) !== undefined, "alice gets bob's message");
    await bob.relationships.terminate(id);
    await expectStatus(alice, id, "Terminated", "alice sees the second termination");
    await decomposeBoth(alice, bob, id);
    steps.push("terminate again", "decompose by each side");

    // The pair is free again.
    const again = await establishRelationship(bob, alice, baseUrl);
    steps.push("relate again");

    for (const account of [alice, bob]) {
        await account.syncDatawallet();
    }
    await alice.close();
    await bob.close();
    return { steps, lastRelationship: again.toString() };
});
