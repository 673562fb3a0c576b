// A new identity onboarded by the official client (with the OAuth client named in the environment)
// reads its announcements through GET /api/v2/Announcements, in the language asked for.
"use strict";

const { createAccount, runCheck } = require("./lib");

runCheck("read-announcements", async ({ transport, connection }) => {
    const account = await createAccount(transport, connection, "reader");
    const language = process.env.NMSHD_TEST_LANGUAGE || "en";
    const announcements = await account.announcements.getAnnouncements(language);
    const address = account.identity.address.toString();
    await account.close();
    return {
        address,
        announcements: announcements.map((a) => ({ id: a.id.toString(), title: a.title, body: a.body, severity: a.severity })),
    };
});
