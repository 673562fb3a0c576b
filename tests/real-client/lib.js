// Shared set-up for the checks that drive the official client library against our backbone.
"use strict";

const { Transport, AccountController, TokenContentRelationshipTemplate } = require("@nmshd/transport");
const { CoreDate } = require("@nmshd/core-types");
const { CoreBuffer } = require("@nmshd/crypto");
const { LokiJsConnection } = require("@js-soft/docdb-access-loki");
const { EventEmitter2EventBus } = require("@js-soft/ts-utils");
const { SimpleLoggerFactory } = require("@js-soft/simple-logger");

function settingsFromEnvironment() {
    const baseUrl = process.env.NMSHD_TEST_BASEURL;
    if (!baseUrl) throw new Error("NMSHD_TEST_BASEURL is not set");
    return {
        baseUrl,
        clientId: process.env.NMSHD_TEST_CLIENTID || "test",
        clientSecret: process.env.NMSHD_TEST_CLIENTSECRET || "test",
        datawalletEnabled: process.env.DATAWALLET === "true",
    };
}

// What the client logged as errors (it logs, for instance, an external event it failed to parse
// and goes on syncing); checks compare it before and after a step.
const loggedErrors = [];

function recordingLoggerFactory() {
    const factory = new SimpleLoggerFactory();
    return {
        getLogger(name) {
            const logger = factory.getLogger(name);
            const record = (level) => (...args) => {
                loggedErrors.push(args.map((arg) => (arg instanceof Error ? arg.message : String(arg))).join(" "));
                logger[level](...args);
            };
            return {
                trace: (...args) => logger.trace(...args),
                debug: (...args) => logger.debug(...args),
                info: (...args) => logger.info(...args),
                warn: (...args) => logger.warn(...args),
                error: record("error"),
                fatal: record("fatal"),
            };
        },
    };
}

async function createTransport(settings) {
    const eventBus = new EventEmitter2EventBus((error) => {
        console.error("event bus error:", error);
    });
    const transport = new Transport(
        {
            baseUrl: settings.baseUrl,
            platformClientId: settings.clientId,
            platformClientSecret: settings.clientSecret,
            supportedIdentityVersion: 1,
            datawalletEnabled: settings.datawalletEnabled,
            debug: false,
        },
        eventBus,
        recordingLoggerFactory(),
    );
    return transport.init();
}

// With a broker, the handlers that turn events into external events run in another process (the
// worker); the test harness then names an endpoint that answers once every event is handled,
// and each sync waits for it, as a user who syncs a moment later would see everything.
async function drainEvents() {
    const drainUrl = process.env.NMSHD_TEST_DRAIN_URL;
    if (!drainUrl) return;
    const response = await fetch(drainUrl);
    if (!response.ok) throw new Error(`events not handled in time: ${await response.text()}`);
}

// The backbone's job that deletes the identities whose grace period is over; the test harness
// names an endpoint that runs it on the backbone's database (as cron would) and answers when done.
async function runIdentityDeletionJob() {
    const jobsUrl = process.env.NMSHD_TEST_JOBS_URL;
    if (!jobsUrl) throw new Error("NMSHD_TEST_JOBS_URL is not set");
    const response = await fetch(`${jobsUrl}/identity-deletion`, { method: "POST" });
    if (!response.ok) throw new Error(`the identity deletion job failed: ${await response.text()}`);
}

// One account = one local database = one device of one identity.
async function createAccount(transport, connection, name, deviceSharedSecret) {
    const database = await connection.getDatabase(name);
    const account = new AccountController(transport, database, transport.config);
    await account.init(deviceSharedSecret);
    const syncEverything = account.syncEverything.bind(account);
    account.syncEverything = async (...args) => {
        await drainEvents();
        return syncEverything(...args);
    };
    return account;
}

function check(condition, message) {
    if (!condition) throw new Error(`check failed: ${message}`);
}

async function runCheck(name, body) {
    const started = Date.now();
    const settings = settingsFromEnvironment();
    try {
        const transport = await createTransport(settings);
        const connection = LokiJsConnection.inMemory();
        const summary = await body({ settings, transport, connection });
        console.log(JSON.stringify({ check: name, datawallet: settings.datawalletEnabled, ok: true,
            seconds: (Date.now() - started) / 1000, ...summary }));
        process.exit(0);
    } catch (error) {
        console.error(`${name} failed (datawallet ${settings.datawalletEnabled}):`, error);
        process.exit(1);
    }
}

function inMinutes(minutes) {
    return CoreDate.utc().add({ minutes });
}

// The owner shares a template through a token; the peer loads both, as an app scanning a QR code does.
async function shareTemplate(owner, peer, baseUrl, { templatePassword, tokenPassword } = {}) {
    const template = await owner.relationshipTemplates.sendRelationshipTemplate({
        content: { greeting: "hello from the template" },
        expiresAt: inMinutes(30),
        maxNumberOfAllocations: 1,
        passwordProtection: templatePassword ? { password: templatePassword, passwordType: "pw" } : undefined,
    });
    const token = await owner.tokens.sendToken({
        content: TokenContentRelationshipTemplate.from({
            templateId: template.id,
            secretKey: template.secretKey,
            passwordProtection: template.passwordProtection?.toSharedPasswordProtection(),
        }),
        expiresAt: inMinutes(30),
        ephemeral: false,
        passwordProtection: tokenPassword ? { password: tokenPassword, passwordType: "pw" } : undefined,
    });
    const reference = token.toTokenReference(baseUrl);
    const peerToken = await peer.tokens.loadPeerTokenByReference(reference, true, tokenPassword);
    const tokenContent = peerToken.content;
    check(tokenContent instanceof TokenContentRelationshipTemplate, "the token carries the template reference");
    check(tokenContent.templateId.toString() === template.id.toString(), "the token names the template");
    const peerTemplate = await peer.relationshipTemplates.loadPeerRelationshipTemplateByTokenContent(
        tokenContent,
        templatePassword,
    );
    check(peerTemplate.createdBy.toString() === owner.identity.address.toString(), "the template names its creator");
    return { template, token, peerTemplate };
}

// The peer requests a relationship from a loaded template; the owner syncs, sees it pending, and accepts.
async function establishRelationship(owner, peer, baseUrl) {
    const { peerTemplate } = await shareTemplate(owner, peer, baseUrl);
    const creationContent = { greeting: "hello from the request" };
    const allowed = await peer.relationships.canSendRelationship({ template: peerTemplate, creationContent });
    check(allowed.isSuccess, `the peer may send a request: ${allowed.isError ? allowed.error.code : ""}`);
    const request = await peer.relationships.sendRelationship({ template: peerTemplate, creationContent });
    check(request.status === "Pending", `the request is pending, not ${request.status}`);
    const id = request.id;

    const ownerChanges = await owner.syncEverything();
    check(ownerChanges.relationships.some((r) => r.id.equals(id)), "the owner learns of the request by syncing");
    const pending = await owner.relationships.getRelationship(id);
    check(pending && pending.status === "Pending", "the owner sees the request pending");
    const accepted = await owner.relationships.accept(id);
    check(accepted.status === "Active", `accepting activates, not ${accepted.status}`);

    const peerChanges = await peer.syncEverything();
    check(peerChanges.relationships.some((r) => r.id.equals(id)), "the peer learns of the acceptance by syncing");
    const active = await peer.relationships.getRelationship(id);
    check(active.status === "Active", `the peer sees it active, not ${active.status}`);
    return id;
}

// Bytes that differ from run to run and cross several chunks of the blob store's streams.
function attachmentBytes(size = 200 * 1024 + 7) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + Date.now()) & 0xff;
    return bytes;
}

// The sender uploads a file and sends it to the recipient attached to a message.
async function sendMessageWithAttachment(sender, recipient, bytes) {
    const file = await sender.files.sendFile({
        buffer: CoreBuffer.from(bytes),
        title: "an attachment",
        filename: "attachment.bin",
        mimetype: "application/octet-stream",
        expiresAt: inMinutes(60),
    });
    const message = await sender.messages.sendMessage({
        recipients: [recipient.identity.address],
        content: { subject: "with an attachment", body: "see the file" },
        attachments: [file],
    });
    return { file, message };
}

// The account holds the message with the attachment, and the attachment downloads byte for byte.
async function checkAttachment(account, messageId, fileId, bytes, who) {
    const message = await account.messages.getMessage(messageId);
    check(message !== undefined, `${who} holds the message`);
    check(message.attachments.length === 1 && message.attachments[0].equals(fileId), `${who} sees the attachment`);
    const file = await account.files.getFile(fileId);
    check(file !== undefined, `${who} knows the attached file`);
    const downloaded = Buffer.from((await account.files.downloadFileContent(file)).buffer);
    check(downloaded.equals(bytes), `${who} downloads the attachment byte for byte (${downloaded.length} bytes)`);
    return downloaded.length;
}

module.exports = {
    loggedErrors,
    runIdentityDeletionJob,
    createAccount,
    check,
    runCheck,
    inMinutes,
    shareTemplate,
    establishRelationship,
    attachmentBytes,
    sendMessageWithAttachment,
    checkAttachment,
};
