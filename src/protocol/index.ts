// smsbridge/protocol — the wire contract of the custom SMS channel protocol, for anyone building an end of it.
export {
  classifyStatus,
  defaultDispatcher,
  type Outcome,
  type PostSignedOptions,
  postSigned,
  type SentRequest,
  serialisePayload,
} from "./client.js";
export { diagnoseSignature, type SignatureDiagnosis, type SignatureMistake } from "./diagnose.js";
export {
  DEFAULT_BODY_LIMIT,
  type RequireSignedOptions,
  requireSigned,
  type SignedState,
  sendError,
  signedBody,
} from "./fastify.js";
export {
  type FieldError,
  formatFieldErrors,
  formatIsoTimestamp,
  type IncomingSms,
  incomingSmsSchema,
  parseIsoTimestamp,
  type StaffReply,
  staffReplySchema,
  type Validation,
  validateIncomingSms,
  validateStaffReply,
} from "./payloads.js";
export { parseRetryAfter } from "./retry-after.js";
export {
  type Bytes,
  decodeSignature,
  describeVerifyFailure,
  SIGNATURE_HEADER,
  SIGNATURE_HEADER_LC,
  sign,
  type VerifyFailure,
  type VerifyResult,
  verify,
} from "./signature.js";
export { type CheckSignedOptions, checkSigned, type ErrorBody, type SignedCheck } from "./signed.js";
