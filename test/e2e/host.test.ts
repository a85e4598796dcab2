// Host mode end to end: the gateway runs on the server host itself (NFQUEUE in INPUT and
// OUTPUT), so the only link carries ciphertext and the plaintext exists only inside the server.
import { datapathSuite } from './suite';

datapathSuite({ mode: 'host', integrityBytes: 50_000_000, serverSidePlaintext: false });
