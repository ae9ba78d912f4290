import {makeShowCommand} from '../../cli/rules-commands.js'

export default makeShowCommand('dbunit')
