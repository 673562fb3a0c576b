// An operator publishes an announcement through the Admin API the way the runtime's test helper
// does (xsrf, then POST with cookie, token and key); the official client reads it as an identity.
"use strict";

const axios = require("axios");
const { createAccount, check, runCheck } = require("./lib");

async function publishAnnouncement(adminUrl, apiKey, body) {
    const xsrf = await axios.get(`${adminUrl}/api/v1/xsrf`, { headers: { "x-api-key": apiKey } });
    const cookie = xsrf.headers["set-cookie"].map((value) => value.split(";")[0]).join("; ");
    const created = await axios.post(`${adminUrl}/api/v1/Announcements`, body, {
        headers: { cookie, "x-xsrf-token": xsrf.data, "x-api-key": apiKey },
        validateStatus: () => true,
    });
    check(created.status === 201, `creating the announcement answers 201, not ${created.status}`);
    check(typeof created.data.result.id === "string", "the answer carries the announcement's id");
    return created.data.result.id;
}

runCheck("announcements", async ({ transport, connection }) => {
    const adminUrl = process.env.NMSHD_TEST_BASEURL_ADMIN_API;
    const apiKey = process.env.NMSHD_TEST_ADMIN_API_KEY;
    if (!adminUrl || !apiKey) throw new Error("NMSHD_TEST_BASEURL_ADMIN_API and NMSHD_TEST_ADMIN_API_KEY must be set");
    const account = await createAccount(transport, connection, "reader");
    const id = await publishAnnouncement(adminUrl, apiKey, {
        severity: "High",
        isSilent: false,
        texts: [
            { language: "en", title: "Maintenance", body: "Tonight" },
            { language: "de", title: "Wartung", body: "Heute Nacht" },
        ],
        actions: [{ displayName: { en: "Details", de: "Mehr" }, link: "https://example.org/maintenance" }],
        recipients: [account.identity.address.toString()],
    });

    const german = await account.announcements.getAnnouncements("de");
    const seen = german.find((announcement) => announcement.id.toString() === id);
    check(seen !== undefined, "the identity sees the announcement addressed to it");
    check(seen.title === "Wartung" && seen.body === "Heute Nacht", "the texts come in the asked language");
    check(seen.severity === "High", `the severity is kept, not ${seen.severity}`);
    check(seen.actions.length === 1 && seen.actions[0].displayName === "Mehr", "the action is localised");
    const fallback = await account.announcements.getAnnouncements("fr");
    check(fallback.some((a) => a.id.toString() === id && a.title === "Maintenance"), "other languages fall back to English");
    await account.close();
    return { announcements: german.length };
});
