export type { Capture, CaptureFormat, CapturedPacket } from './reader';
export { captureRecords, detectCaptureFormat, readCapture } from './reader';
export type { PacketToWrite } from './writer';
export { PCAP_SNAPLEN, writePcap } from './writer';
